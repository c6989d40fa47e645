"""The webhook delivery queue: every pending delivery is in Redis at most once, so none is ever queued
twice. `enqueue_deliveries` makes recorded deliveries due (after the transaction that recorded them
commits); `resend_lost` is the sweeper's re-send of those whose enqueue was lost.

Two sorted sets, members are delivery ids (`msg_...`):

- `textfleet:webhooks:due` (score: when the next attempt is due, epoch seconds). Enqueuing is `ZADD`:
  adding an id that is already there only moves its time, so a delivery cannot be queued twice.
- `textfleet:webhooks:leased` (score: when the lease ends). A webhook worker takes due ids with one
  Lua call (`pull`), which moves them from `due` to `leased` atomically; after writing the outcomes to
  the database it settles them (`settle`): done ids leave both sets, retries go back to `due` at their
  next time. A lease that ends on a dead worker is moved back to `due` (`reap`): the only re-send of
  something already queued, and only of what is provably lost.

A Redis restart loses both sets. `textfleet:webhooks:epoch` is written once the due set is complete;
when a worker finds it missing, one worker (lock `textfleet:webhooks:rebuild`) rebuilds the due set
from the database's pending rows (`ZADD NX`: entries added meanwhile keep their time) and writes the
epoch again. The database stays the source of truth; Redis only holds what is due when.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import redis
from celery import Celery
from sqlalchemy import select

from shared.constants import REDIS_KEY_PREFIX
from shared.db import session_scope
from shared.db.models import WebhookDelivery
from shared.queueing import publish, redis_client
from shared.webhooks.records import due_deliveries

__all__ = [
    "DUE_KEY",
    "EPOCH_KEY",
    "LEASED_KEY",
    "REBUILD_LOCK",
    "enqueue",
    "enqueue_deliveries",
    "ensure_epoch",
    "missing",
    "pending_counts",
    "pull",
    "reap",
    "rebuild",
    "resend_lost",
    "settle",
]

DUE_KEY = f"{REDIS_KEY_PREFIX}webhooks:due"
LEASED_KEY = f"{REDIS_KEY_PREFIX}webhooks:leased"
EPOCH_KEY = f"{REDIS_KEY_PREFIX}webhooks:epoch"
REBUILD_LOCK = f"{REDIS_KEY_PREFIX}webhooks:rebuild"

#: Ids per Redis command when many are written at once.
_CHUNK = 5000

# KEYS: due, leased. ARGV: now, limit, lease end. Moves up to `limit` due ids to `leased`.
PULL_SCRIPT = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then
  redis.call('ZREM', KEYS[1], unpack(ids))
  local args = {}
  for i, id in ipairs(ids) do
    args[2 * i - 1] = ARGV[3]
    args[2 * i] = id
  end
  redis.call('ZADD', KEYS[2], unpack(args))
end
return ids
"""

# KEYS: leased, due. ARGV: now, limit. Moves up to `limit` expired leases back to `due` (due now).
REAP_SCRIPT = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then
  redis.call('ZREM', KEYS[1], unpack(ids))
  local args = {}
  for i, id in ipairs(ids) do
    args[2 * i - 1] = ARGV[1]
    args[2 * i] = id
  end
  redis.call('ZADD', KEYS[2], 'NX', unpack(args))
end
return #ids
"""


def _ids(raw: Sequence[Any]) -> list[str]:
    return [m.decode() if isinstance(m, bytes) else str(m) for m in raw]


def enqueue(client: redis.Redis, delivery_ids: Sequence[str], at: float | None = None) -> None:
    """Make deliveries due at `at` (epoch seconds; default now). An id already due only moves."""
    when = time.time() if at is None else at
    for start in range(0, len(delivery_ids), _CHUNK):
        client.zadd(DUE_KEY, dict.fromkeys(delivery_ids[start : start + _CHUNK], when))


def pull(client: redis.Redis, limit: int, lease_s: float, now: float | None = None) -> list[str]:
    """Take up to `limit` due ids (oldest first), leased for `lease_s` seconds."""
    now = time.time() if now is None else now
    raw = client.eval(PULL_SCRIPT, 2, DUE_KEY, LEASED_KEY, now, limit, now + lease_s)
    return _ids(raw)


def settle(
    client: redis.Redis, done: Sequence[str], later: Mapping[str, float], release: Sequence[str] = ()
) -> None:
    """After the outcomes are written: `done` ids leave both sets, `later` ids are due again at their
    time (epoch seconds), `release` ids only lose their lease (another owner schedules them). One
    MULTI, so an id is always in one of the sets or settled."""
    with client.pipeline(transaction=True) as pipe:
        gone = [*done, *later, *release]
        if gone:
            pipe.zrem(LEASED_KEY, *gone)
        if done:
            pipe.zrem(DUE_KEY, *done)
        if later:
            pipe.zadd(DUE_KEY, dict(later))
        pipe.execute()


def reap(client: redis.Redis, now: float | None = None, limit: int = 1000) -> int:
    """Move leases that ended (their worker died) back to the due set; how many."""
    now = time.time() if now is None else now
    return int(client.eval(REAP_SCRIPT, 2, LEASED_KEY, DUE_KEY, now, limit))


def pending_counts(client: redis.Redis) -> tuple[int, int]:
    """(due, leased) ids in Redis."""
    with client.pipeline(transaction=False) as pipe:
        pipe.zcard(DUE_KEY)
        pipe.zcard(LEASED_KEY)
        due, leased = pipe.execute()
    return int(due), int(leased)


def missing(client: redis.Redis, delivery_ids: Sequence[str]) -> list[str]:
    """The ids in neither set: their enqueue was lost (what the sweeper may re-send)."""
    if not delivery_ids:
        return []
    with client.pipeline(transaction=False) as pipe:
        pipe.zmscore(DUE_KEY, list(delivery_ids))
        pipe.zmscore(LEASED_KEY, list(delivery_ids))
        due, leased = pipe.execute()
    return [i for i, a, b in zip(delivery_ids, due, leased, strict=True) if a is None and b is None]


def rebuild(client: redis.Redis, database_url: str) -> int:
    """Add every pending delivery of the database to the due set at its `next_attempt_at` (`NX`:
    ids already there keep their time). How many rows were read."""
    count = 0
    last = ""
    while True:
        with session_scope(database_url) as session:
            rows = session.execute(
                select(WebhookDelivery.id, WebhookDelivery.next_attempt_at)
                .where(WebhookDelivery.status == "pending", WebhookDelivery.id > last)
                .order_by(WebhookDelivery.id)
                .limit(_CHUNK)
            ).all()
        if not rows:
            return count
        now = time.time()
        scores = {r.id: (r.next_attempt_at.timestamp() if r.next_attempt_at else now) for r in rows}
        client.zadd(DUE_KEY, scores, nx=True)
        count += len(rows)
        last = rows[-1].id


def ensure_epoch(client: redis.Redis, database_url: str) -> bool:
    """Rebuild the due set once after Redis lost it (no epoch key). True if this call rebuilt it."""
    if client.exists(EPOCH_KEY):
        return False
    token = secrets.token_hex(8)
    if not client.set(REBUILD_LOCK, token, nx=True, ex=120):
        return False  # another worker is rebuilding
    try:
        rebuild(client, database_url)
        client.set(EPOCH_KEY, f"{time.time():.3f}")
    finally:
        if client.get(REBUILD_LOCK) == token.encode():
            client.delete(REBUILD_LOCK)
    return True


def enqueue_deliveries(
    broker: Celery | redis.Redis, delivery_ids: Sequence[str], countdown: float | None = None
) -> None:
    """Make deliveries due (now, or `countdown` seconds from now) in the due set of the broker's Redis
    (`broker`: the Celery app, or a client of its Redis), in one write, tried once more on a fresh
    connection (`shared.queueing.publish`). An id already due only moves: a delivery is never queued
    twice. Raises QueueUnavailableError if Redis refuses."""
    if not delivery_ids:
        return
    at = time.time() + countdown if countdown else None
    client = broker if isinstance(broker, redis.Redis) else redis_client(str(broker.conf.broker_url))
    publish(lambda: enqueue(client, delivery_ids, at), "webhook deliveries")


def resend_lost(client: redis.Redis, database_url: str, now: datetime, grace_s: float) -> int:
    """Make due again the pending deliveries overdue by more than `grace_s` that are in neither set:
    their enqueue was lost (a crash or a Redis error right after the commit). One waiting behind a
    backlog is still in the due (or leased) set and is never re-sent. How many were re-sent."""
    with session_scope(database_url) as session:
        overdue = due_deliveries(session, now, grace_s)
    unqueued = missing(client, overdue)
    if unqueued:  # read again: one delivered (and settled) since the first read is not lost
        with session_scope(database_url) as session:
            unqueued = list(
                session.scalars(
                    select(WebhookDelivery.id).where(
                        WebhookDelivery.id.in_(unqueued), WebhookDelivery.status == "pending"
                    )
                )
            )
        enqueue_deliveries(client, unqueued)
    return len(unqueued)
