"""Batch status transitions from the jobs (`shared.batches`), as the sweeper runs them: real databases
(PostgreSQL, SQLite) and real Redis."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import redis
from sqlalchemy import select

from shared import batches
from shared.db.batch_models import Batch
from shared.db.models import Job, WebhookDelivery, utcnow
from shared.db.session import session_scope
from shared.webhooks import queue as wq
from tests.utils.batches import batch_job_ids, batch_rows, finish_batch_jobs


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


def _status(database_url: str, batch_id: str) -> str:
    with session_scope(database_url) as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        return batch.status


def _sweep(database_url: str, client: redis.Redis) -> int:
    with session_scope(database_url) as session:
        return batches.advance_active(session, client, limit=10_000)


def test_completed_when_every_request_is_done(database_url: str, client: redis.Redis) -> None:
    batch_id = batch_rows(database_url, 3)
    ids = list(batch_job_ids(database_url, batch_id).values())
    finish_batch_jobs(database_url, ids[:2])
    _sweep(database_url, client)
    assert _status(database_url, batch_id) == "in_progress"
    finish_batch_jobs(database_url, ids[2:], status="failed")
    assert _sweep(database_url, client) >= 1
    assert _status(database_url, batch_id) == "completed"
    with session_scope(database_url) as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        assert batches.counts(session, batch) == batches.Counts(total=3, completed=2, failed=1)


def test_expired_past_the_window_keeps_what_finished(database_url: str, client: redis.Redis) -> None:
    batch_id = batch_rows(database_url, 3, expires_in_s=-1)
    ids = batch_job_ids(database_url, batch_id)
    finish_batch_jobs(database_url, [ids["req-0"]])
    _sweep(database_url, client)
    assert _status(database_url, batch_id) == "expired"
    with session_scope(database_url) as session:
        statuses = {job.id: job.status for job in session.query(Job).filter(Job.id.in_(ids.values()))}
    assert statuses == {ids["req-0"]: "succeeded", ids["req-1"]: "canceled", ids["req-2"]: "canceled"}


def test_cancelling_ends_when_nothing_runs(database_url: str, client: redis.Redis) -> None:
    batch_id = batch_rows(database_url, 2, status="cancelling")
    ids = list(batch_job_ids(database_url, batch_id).values())
    finish_batch_jobs(database_url, ids[:1])
    _sweep(database_url, client)
    assert _status(database_url, batch_id) == "cancelling"
    finish_batch_jobs(database_url, ids[1:], status="canceled")
    _sweep(database_url, client)
    assert _status(database_url, batch_id) == "cancelled"


# --- the batch's webhook event --------------------------------------------------------------------

HOOK = "https://hooks.example.com/batches"


def _deliveries(database_url: str, batch_id: str) -> list[WebhookDelivery]:
    with session_scope(database_url) as session:
        rows = session.scalars(select(WebhookDelivery).where(WebhookDelivery.batch_id == batch_id)).all()
        session.expunge_all()
        return list(rows)


def _ended_batch(database_url: str, status: str) -> str:
    """A batch with a webhook whose jobs (and clock) say it ends in `status` at its next advance."""
    if status == "expired":
        return batch_rows(database_url, 2, expires_in_s=-1, webhook=HOOK)
    batch_id = batch_rows(
        database_url, 2, status="cancelling" if status == "cancelled" else "in_progress", webhook=HOOK
    )
    finish_batch_jobs(database_url, list(batch_job_ids(database_url, batch_id).values()))
    return batch_id


@pytest.mark.parametrize("status", ["completed", "expired", "cancelled"])
def test_a_batch_that_ends_records_one_event_read_and_swept(
    status: str, database_url: str, client: redis.Redis
) -> None:
    batch_id = _ended_batch(database_url, status)
    assert _deliveries(database_url, batch_id) == []
    with session_scope(database_url) as session:  # a client's read moves it (as the API's GET does)
        batch = session.get(Batch, batch_id)
        assert batch is not None
        batches.advance(session, batch, client)
    _sweep(database_url, client)  # and the sweeper comes by, twice
    _sweep(database_url, client)
    assert _status(database_url, batch_id) == status
    [delivery] = _deliveries(database_url, batch_id)
    assert (delivery.event, delivery.url, delivery.status, delivery.job_id) == (status, HOOK, "pending", None)
    assert client.zscore(wq.DUE_KEY, delivery.id) is not None  # enqueued after the commit


def test_advanced_concurrently_a_batch_records_one_event(database_url: str, client: redis.Redis) -> None:
    batch_id = _ended_batch(database_url, "completed")
    barrier = threading.Barrier(4)

    def advance() -> str:
        with session_scope(database_url) as session:
            batch = session.get(Batch, batch_id)
            assert batch is not None and batch.status == "in_progress"
            current = batches.counts(session, batch)
            session.rollback()
            barrier.wait(timeout=10)
            batches.advance(session, batch, client, current)
            return batch.status

    with ThreadPoolExecutor(4) as pool:
        seen = [future.result(timeout=60) for future in [pool.submit(advance) for _ in range(4)]]
    assert seen == ["completed"] * 4
    [delivery] = _deliveries(database_url, batch_id)
    assert delivery.event == "completed"


def test_a_batch_without_a_webhook_records_no_event(database_url: str, client: redis.Redis) -> None:
    batch_id = batch_rows(database_url, 1)
    finish_batch_jobs(database_url, list(batch_job_ids(database_url, batch_id).values()))
    _sweep(database_url, client)
    assert _status(database_url, batch_id) == "completed"
    assert _deliveries(database_url, batch_id) == []


def test_a_lost_enqueue_of_a_batch_event_is_re_sent(database_url: str, client: redis.Redis) -> None:
    batch_id = _ended_batch(database_url, "completed")
    _sweep(database_url, client)
    [delivery] = _deliveries(database_url, batch_id)
    client.zrem(wq.DUE_KEY, delivery.id)  # Redis lost it right after the commit
    later = utcnow() + timedelta(minutes=5)
    assert wq.resend_lost(client, database_url, later, grace_s=60) >= 1
    assert client.zscore(wq.DUE_KEY, delivery.id) is not None
