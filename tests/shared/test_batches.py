"""Batch status transitions from the jobs (`shared.batches`), as the sweeper runs them: real databases
(PostgreSQL, SQLite) and real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from shared import batches
from shared.db.batch_models import Batch
from shared.db.models import Job
from shared.db.session import session_scope
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
