"""`shared.webhooks.queue`: the due and leased sets on a real Redis, the rebuild from a real database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from sqlalchemy import update

from shared.db import session_scope
from shared.db.models import WebhookDelivery, utcnow
from shared.webhooks import queue as wq
from shared.webhooks import record_event
from tests.utils.factories import add_jobs, webhook_job_row


@pytest.fixture
def client(clean_redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(clean_redis_url)
    yield c
    c.close()


def _members(client: redis.Redis, key: str) -> dict[str, float]:
    return {k.decode(): v for k, v in client.zrange(key, 0, -1, withscores=True)}


def test_an_id_is_queued_once_and_pulled_once(client: redis.Redis) -> None:
    now = time.time()
    wq.enqueue(client, ["msg_1", "msg_2", "msg_3"], at=now - 3)
    wq.enqueue(client, ["msg_1"], at=now - 1)  # again: it only moves
    wq.enqueue(client, ["msg_future"], at=now + 60)
    assert wq.pending_counts(client) == (4, 0)

    first = wq.pull(client, 2, lease_s=30, now=now)
    assert first == ["msg_2", "msg_3"]  # oldest first
    second = wq.pull(client, 10, lease_s=30, now=now)
    assert second == ["msg_1"]  # never twice, and not what is not yet due
    assert wq.pull(client, 10, lease_s=30, now=now) == []
    leased = _members(client, wq.LEASED_KEY)
    assert set(leased) == {"msg_1", "msg_2", "msg_3"}
    assert all(v == pytest.approx(now + 30) for v in leased.values())
    assert wq.pending_counts(client) == (1, 3)

    wq.settle(client, done=["msg_2"], later={"msg_3": now + 5}, release=["msg_1"])
    assert _members(client, wq.LEASED_KEY) == {}
    assert _members(client, wq.DUE_KEY) == {"msg_3": pytest.approx(now + 5), "msg_future": now + 60}


def test_expired_leases_are_reaped_back_to_due(client: redis.Redis) -> None:
    now = time.time()
    wq.enqueue(client, ["msg_dead", "msg_live"], at=now - 1)
    assert wq.pull(client, 1, lease_s=1, now=now) == ["msg_dead"]
    assert wq.pull(client, 1, lease_s=100, now=now) == ["msg_live"]
    assert wq.reap(client, now=now + 0.5) == 0  # not over yet
    assert wq.reap(client, now=now + 2) == 1
    assert set(_members(client, wq.DUE_KEY)) == {"msg_dead"}
    assert set(_members(client, wq.LEASED_KEY)) == {"msg_live"}


def test_missing_lists_ids_in_neither_set(client: redis.Redis) -> None:
    wq.enqueue(client, ["msg_due", "msg_leased"])
    wq.pull(client, 10, lease_s=30)
    wq.enqueue(client, ["msg_due"])
    assert wq.missing(client, ["msg_due", "msg_leased", "msg_lost"]) == ["msg_lost"]
    assert wq.missing(client, []) == []


def test_the_due_set_is_rebuilt_once_from_the_database(client: redis.Redis, database_url: str) -> None:
    with session_scope(database_url) as session:  # earlier tests' rows must not count here
        session.execute(
            update(WebhookDelivery).where(WebhookDelivery.status == "pending").values(status="failed")
        )
    jobs = [webhook_job_row("http://127.0.0.1:9/hook", ["completed"]) for _ in range(3)]
    with session_scope(database_url) as session:
        add_jobs(session, jobs)
        rows = [record_event(session, job, "completed") for job in jobs]
    ids = [r.id for r in rows if r is not None]
    later = utcnow() + timedelta(seconds=120)
    with session_scope(database_url) as session:
        session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id == ids[1]).values(next_attempt_at=later)
        )
        session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id == ids[2]).values(status="delivered")
        )
    wq.enqueue(client, [ids[0]], at=1.0)  # queued meanwhile: keeps its time

    assert wq.ensure_epoch(client, database_url) is True
    assert wq.ensure_epoch(client, database_url) is False  # once per Redis life
    due = _members(client, wq.DUE_KEY)
    assert set(due) == {ids[0], ids[1]}
    assert due[ids[0]] == 1.0
    assert due[ids[1]] == pytest.approx(later.timestamp(), abs=1e-3)
    assert client.exists(wq.EPOCH_KEY) and not client.exists(wq.REBUILD_LOCK)

    client.flushdb()  # Redis restarted empty
    assert wq.ensure_epoch(client, database_url) is True
    assert set(_members(client, wq.DUE_KEY)) == {ids[0], ids[1]}


def test_a_rebuild_in_progress_elsewhere_is_not_repeated(client: redis.Redis, database_url: str) -> None:
    client.set(wq.REBUILD_LOCK, "someone", ex=60)
    assert wq.ensure_epoch(client, database_url) is False
    assert not client.exists(wq.EPOCH_KEY)
