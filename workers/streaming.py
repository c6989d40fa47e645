"""Publishing a streamed generation's text as it grows (`params.stream`), for the API to relay.

The engine calls the publisher with the whole text so far after each step; it publishes on the job's
stream channel at most every `interval_s` (and never the same text twice). Best effort by design: the
job's recorded result is the truth the API ends every stream with, so a Redis error only stops the
updates (logged once), never the generation.
"""

from __future__ import annotations

import time

import redis
import structlog

from shared.constants import STREAM_INTERVAL_S, job_stream_channel

__all__ = ["STREAM_INTERVAL_S", "TextPublisher"]

log = structlog.get_logger(__name__)


class TextPublisher:
    """`publisher(text)`: publish `text` (the whole text so far) if `interval_s` passed since the last."""

    def __init__(self, client: redis.Redis, job_id: str, *, interval_s: float = STREAM_INTERVAL_S) -> None:
        self._client = client
        self._channel = job_stream_channel(job_id)
        self._interval_s = interval_s
        self._last = 0.0
        self._sent = ""
        self._broken = False

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        if self._broken or text == self._sent or now - self._last < self._interval_s:
            return
        try:
            self._client.publish(self._channel, text)
        except redis.RedisError as exc:
            self._broken = True
            log.warning("stream.publish_failed", channel=self._channel, error_type=type(exc).__name__)
            return
        self._last, self._sent = now, text
