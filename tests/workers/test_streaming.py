"""A streamed generation's text is published on its job's channel as it grows: throttled, never the
same text twice, and a Redis failure stops the updates without failing the generation."""

from __future__ import annotations

import time
from typing import Any

import redis

from shared.constants import job_stream_channel
from workers.streaming import TextPublisher


def _received(pubsub: Any, within_s: float = 2.0) -> list[str]:
    texts: list[str] = []
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            texts.append(message["data"].decode())
    return texts


def test_the_text_so_far_is_published_throttled_and_never_twice(clean_redis_url: str) -> None:
    client = redis.Redis.from_url(clean_redis_url)
    pubsub = client.pubsub()  # type: ignore[no-untyped-call]
    pubsub.subscribe(job_stream_channel("JOB1"))
    assert pubsub.get_message(timeout=2) is not None  # the subscription is confirmed
    publish = TextPublisher(client, "JOB1", interval_s=0.2)
    publish("The")
    publish("The sky")  # within the interval: skipped
    time.sleep(0.25)
    publish("The sky")
    time.sleep(0.25)
    publish("The sky")  # the same text again: skipped
    try:
        assert _received(pubsub, within_s=1.0) == ["The", "The sky"]
    finally:
        pubsub.close()
        client.close()


def test_a_redis_failure_stops_the_updates_quietly() -> None:
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    publish = TextPublisher(client, "JOB2", interval_s=0.0)
    publish("a")  # refused: no exception
    began = time.monotonic()
    publish("ab")  # given up: no new connection attempt
    assert time.monotonic() - began < 0.05
    client.close()
