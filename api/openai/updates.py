"""The text of streamed generations as it grows, relayed from the workers' stream channels.

A worker running a `generate` job with `params.stream` publishes the job's whole text so far on
`job_stream_channel(job_id)` every few tens of milliseconds (`workers.streaming`). Each message holds the
whole text, not a delta, so a lost message (pub/sub is fire-and-forget) loses nothing the next one does
not repeat, and the job's recorded result stays the truth: `api.openai.streaming` sends what the
updates add, then the rest from the result. Without Redis, updates simply never come.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import structlog
from redis.asyncio import Redis

from shared.constants import STREAM_CHANNEL_PREFIX, job_stream_channel

__all__ = ["TextUpdates", "text_updates"]

log = structlog.get_logger(__name__)


class TextUpdates:
    """Updates of the subscribed jobs: `(job_id, text so far)`."""

    def __init__(self, pubsub: Any | None) -> None:
        self._pubsub = pubsub

    async def next(self, *, timeout_s: float) -> tuple[str, str] | None:
        """The next update, or None after `timeout_s` (at once and for good after a Redis error)."""
        if self._pubsub is None:
            await asyncio.sleep(timeout_s)
            return None
        try:
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout_s)
        except Exception as exc:  # Redis went away: the result still comes from the job
            log.warning("openai.stream_updates_lost", error_type=type(exc).__name__)
            self._pubsub = None
            return None
        if message is None or message.get("type") != "message":
            return None
        channel = message["channel"].decode("utf-8", "replace")
        return channel.removeprefix(STREAM_CHANNEL_PREFIX), message["data"].decode("utf-8", "replace")


@contextlib.asynccontextmanager
async def text_updates(redis_url: str, job_ids: Sequence[str]) -> AsyncIterator[TextUpdates]:
    """Subscribe to the jobs' stream channels for the block (one connection of its own)."""
    client = Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=10)
    pubsub = client.pubsub()
    try:
        try:
            await pubsub.subscribe(*(job_stream_channel(job_id) for job_id in job_ids))
        except Exception as exc:
            log.warning("openai.stream_subscribe_failed", error_type=type(exc).__name__)
            yield TextUpdates(None)
        else:
            yield TextUpdates(pubsub)
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(Exception):
            await client.aclose()
