"""Queue depth, read from Redis in one pipelined round trip (what KEDA and /metrics read).

For a queue `q` (generate, classify, webhooks):

- `waiting` = the sum of `LLEN` over Celery's priority lists of `q`: `q` (our priority 9) and
  `q:1` ... `q:9` (our priorities 8 ... 0; Celery's Redis transport appends `:<celery priority>`
  with `sep=":"`, and priority 0 is the bare name).
- `outstanding` = max(`ZCARD textfleet:outstanding:q`, waiting): jobs accepted and not yet
  terminal.
- The webhooks queue is no Celery list but the delivery queue's sorted sets (shared/webhooks/queue.py):
  `waiting` = deliveries due now (`ZCOUNT` of the due set up to now; later retries are not work yet),
  `in_flight` = deliveries leased by a webhook worker, `outstanding` = their sum.
- `in_flight` = outstanding - waiting: reserved by a worker or running (or delayed for a retry).
- `workers`: the live workers of `q`, from their heartbeat keys `textfleet:worker:q:<hostname>`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from redis.asyncio import Redis

from shared.constants import (
    HEARTBEAT_SCAN_MAX,
    HEARTBEAT_SCAN_PAGE,
    PRIORITY_MAX,
    WORKER_HEARTBEAT_PREFIX,
    Queue,
    outstanding_key,
)
from shared.metrics import QUEUE_IN_FLIGHT, QUEUE_OUTSTANDING, QUEUE_WAITING
from shared.webhooks.queue import DUE_KEY, LEASED_KEY

__all__ = ["QueueStats", "priority_lists", "queue_depths", "refresh_queue_gauges"]

#: Queues that have an outstanding set (webhook deliveries are not tracked there).
_TRACKED = frozenset({Queue.GENERATE, Queue.CLASSIFY})


def priority_lists(queue: Queue) -> list[str]:
    """The Redis lists holding `queue`'s waiting messages: `<queue>`, `<queue>:1` ... `<queue>:9`."""
    return [queue.value, *(f"{queue.value}:{n}" for n in range(1, PRIORITY_MAX + 1))]


async def queue_depths(redis: Redis, *, with_workers: bool = False) -> dict[str, dict[str, Any]]:
    """`{queue: {"queue", "waiting", "in_flight", "outstanding"[, "workers"]}}` for every queue.

    Depths come from one pipelined round trip; with `with_workers`, heartbeat keys cost one more
    (a SCAN per queue, then one MGET)."""
    queues = [q for q in Queue if q is not Queue.WEBHOOKS]
    async with redis.pipeline(transaction=False) as pipe:
        for queue in queues:
            for key in priority_lists(queue):
                pipe.llen(key)
            if queue in _TRACKED:
                pipe.zcard(outstanding_key(queue))
        pipe.zcount(DUE_KEY, "-inf", time.time())
        pipe.zcard(LEASED_KEY)
        replies: list[int] = [int(r) for r in await pipe.execute()]
    due, leased = replies[-2:]
    out: dict[str, dict[str, Any]] = {
        Queue.WEBHOOKS.value: {
            "queue": Queue.WEBHOOKS.value,
            "waiting": due,
            "in_flight": leased,
            "outstanding": due + leased,
        }
    }
    position = 0
    for queue in queues:
        lists = len(priority_lists(queue))
        waiting = sum(replies[position : position + lists])
        position += lists
        tracked = waiting
        if queue in _TRACKED:
            tracked = replies[position]
            position += 1
        outstanding = max(tracked, waiting)
        out[queue.value] = {
            "queue": queue.value,
            "waiting": waiting,
            "in_flight": outstanding - waiting,
            "outstanding": outstanding,
        }
    if with_workers:
        workers = await _workers(redis, list(Queue))
        for every in Queue:
            out[every.value]["workers"] = workers[every.value]
    return out


async def _workers(redis: Redis, queues: list[Queue]) -> dict[str, list[dict[str, Any]]]:
    keys: list[tuple[Queue, bytes]] = []
    for queue in queues:
        found = 0
        pattern = f"{WORKER_HEARTBEAT_PREFIX}{queue.value}:*"
        async for key in redis.scan_iter(match=pattern, count=HEARTBEAT_SCAN_PAGE):
            keys.append((queue, key))
            found += 1
            if found >= HEARTBEAT_SCAN_MAX:
                break
    out: dict[str, list[dict[str, Any]]] = {q.value: [] for q in queues}
    if not keys:
        return out
    values = await redis.mget([key for _, key in keys])
    for (queue, _key), raw in zip(keys, values, strict=True):
        if raw is None:  # expired between SCAN and MGET
            continue
        try:
            beat = json.loads(raw)
        except ValueError:
            continue
        out[queue.value].append(
            {
                "hostname": str(beat.get("hostname", "")),
                "running": int(beat.get("running", 0)),
                "http_port": beat.get("http_port"),
            }
        )
    for workers in out.values():
        workers.sort(key=lambda w: w["hostname"])
    return out


async def refresh_queue_gauges(redis: Redis) -> None:
    """Set the `textfleet_queue_*` gauges from Redis (before a scrape is answered)."""
    for name, depth in (await queue_depths(redis)).items():
        QUEUE_WAITING.labels(queue=name).set(depth["waiting"])
        QUEUE_IN_FLIGHT.labels(queue=name).set(depth["in_flight"])
        QUEUE_OUTSTANDING.labels(queue=name).set(depth["outstanding"])


class QueueStats:
    """Queue depths of one app's Redis (built once per app, held on `app.state.queue_stats`)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def depths(self, *, with_workers: bool = False) -> dict[str, dict[str, Any]]:
        """Every queue's depth (and live workers): see `queue_depths`."""
        return await queue_depths(self._redis, with_workers=with_workers)

    async def refresh_gauges(self) -> None:
        """Set the `textfleet_queue_*` gauges (before a scrape is answered)."""
        await refresh_queue_gauges(self._redis)
