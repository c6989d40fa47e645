"""`shared.webhooks`: delivery rows (one per job and event), reads, enqueuing, schedule, address policy."""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta

import pytest
import redis
from sqlalchemy import func, select, text, update

from shared.backoff import backoff_s
from shared.db import session_scope
from shared.db.models import Job, WebhookDelivery, utcnow
from shared.queueing import make_celery
from shared.settings import Settings
from shared.webhooks import (
    BACKOFF_JITTER,
    BACKOFF_SCHEDULE_S,
    deliveries_for,
    due_deliveries,
    enqueue_deliveries,
    record_event,
)
from shared.webhooks.queue import DUE_KEY
from tests.utils.factories import add_jobs, job_row, webhook_job_row

URL = "https://hooks.example.com/textfleet"


def _count(database_url: str, job_id: str) -> int:
    with session_scope(database_url) as session:
        return int(
            session.scalar(
                select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.job_id == job_id)
            )
            or 0
        )


def test_record_event_inserts_one_pending_row_and_is_idempotent(database_url: str) -> None:
    job = webhook_job_row(URL, ["started", "completed"])
    with session_scope(database_url) as session:
        add_jobs(session, [job])
        first = record_event(session, job, "started")
        again = record_event(session, job, "started")  # same transaction
    assert first is not None
    assert again is None
    assert first.id.startswith("msg_") and len(first.id) == 30
    assert (first.status, first.attempts, first.event, first.url) == ("pending", 0, "started", URL)
    assert first.next_attempt_at is not None
    with session_scope(database_url) as session:  # a later transaction
        assert record_event(session, job, "started") is None
        completed = record_event(session, job, "completed")
    assert completed is not None and completed.id != first.id
    assert _count(database_url, job.id) == 2


def test_unsubscribed_event_and_job_without_webhook_make_no_row(database_url: str) -> None:
    only_completed = webhook_job_row(URL, ["completed"])
    default_events = webhook_job_row(URL)
    default_events.webhook_events = None  # as JobCreate: a webhook with no events means `completed`
    plain = job_row()
    with session_scope(database_url) as session:
        add_jobs(session, [only_completed, default_events, plain])
        assert record_event(session, only_completed, "started") is None
        assert record_event(session, default_events, "started") is None
        assert record_event(session, default_events, "completed") is not None
        assert record_event(session, plain, "completed") is None
        assert record_event(session, plain, "started") is None
        with pytest.raises(ValueError, match="unknown webhook event"):
            record_event(session, only_completed, "finished")
    assert _count(database_url, only_completed.id) == 0
    assert _count(database_url, default_events.id) == 1
    assert _count(database_url, plain.id) == 0


def test_record_event_takes_a_returning_row_of_a_state_change(database_url: str) -> None:
    """A batched claim (`UPDATE ... RETURNING id, webhook, webhook_events`) needs no ORM object."""
    job = webhook_job_row(URL, ["started"])
    with session_scope(database_url) as session:
        add_jobs(session, [job])
    with session_scope(database_url) as session:
        row = session.execute(
            update(Job)
            .where(Job.id == job.id, Job.status == "queued")
            .values(status="running")
            .returning(Job.id, Job.webhook, Job.webhook_events)
        ).first()
        assert row is not None
        delivery = record_event(session, row, "started")
        assert record_event(session, row, "completed") is None  # not subscribed
    assert delivery is not None and delivery.job_id == job.id
    assert _count(database_url, job.id) == 1


def test_concurrent_record_event_is_absorbed_by_the_unique_constraint(database_url: str) -> None:
    """Two transactions both pass the SELECT; the second INSERT conflicts, returns None, and leaves
    its transaction usable (no aborted PostgreSQL transaction for the caller)."""
    job = webhook_job_row(URL, ["completed"])
    with session_scope(database_url) as session:
        add_jobs(session, [job])
    results: dict[str, object] = {}
    first_inserted = threading.Event()

    def second() -> None:
        first_inserted.wait(10)
        with session_scope(database_url) as session:
            results["second"] = record_event(session, job, "completed")  # blocks until the first commits
            session.execute(text("SELECT 1"))  # the transaction still works
            results["ok"] = True

    thread = threading.Thread(target=second)
    thread.start()
    with session_scope(database_url) as session:
        session.execute(  # take the row lock first (SQLite: the write lock) so both race on the insert
            update(Job).where(Job.id == job.id).values(priority=job.priority)
        )
        results["first"] = record_event(session, job, "completed")
        first_inserted.set()
        time.sleep(0.5)
    thread.join(30)
    assert results["first"] is not None
    assert results["second"] is None
    assert results["ok"] is True
    assert _count(database_url, job.id) == 1


def test_deliveries_for_returns_each_jobs_state_in_one_read(database_url: str) -> None:
    both = webhook_job_row(URL, ["started", "completed"])
    none = job_row()
    with session_scope(database_url) as session:
        add_jobs(session, [both, none])
        started = record_event(session, both, "started")
        completed = record_event(session, both, "completed")
    assert started is not None and completed is not None
    delivered_at = utcnow()
    with session_scope(database_url) as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == started.id)
            .values(status="delivered", attempts=1, last_status_code=204, delivered_at=delivered_at)
        )
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == completed.id)
            .values(status="failed", attempts=2, last_status_code=None, last_error="HTTP 500; gave up")
        )
    with session_scope(database_url) as session:
        out = deliveries_for(session, [both.id, none.id, "01UNKNOWN"])
    assert set(out) == {both.id, none.id, "01UNKNOWN"}
    assert out[none.id] == [] and out["01UNKNOWN"] == []
    first, second = out[both.id]
    assert (first.id, first.event, first.status, first.attempts) == (started.id, "started", "delivered", 1)
    assert first.last_status_code == 204
    assert first.delivered_at is not None and abs(first.delivered_at - delivered_at) < timedelta(seconds=1)
    assert first.next_attempt_at is None
    assert (second.event, second.status, second.attempts, second.last_error) == (
        "completed",
        "failed",
        2,
        "HTTP 500; gave up",
    )


def test_due_deliveries_lists_only_overdue_pending_rows(database_url: str) -> None:
    jobs = [webhook_job_row(URL) for _ in range(4)]
    with session_scope(database_url) as session:
        add_jobs(session, jobs)
        rows = [record_event(session, job, "completed") for job in jobs]
    ids = [r.id for r in rows if r is not None]
    now = utcnow()
    schedule = {
        ids[0]: ("pending", now - timedelta(seconds=600)),  # overdue: listed
        ids[1]: ("pending", now - timedelta(seconds=10)),  # within the grace: not yet
        ids[2]: ("pending", now + timedelta(seconds=600)),  # not due
        ids[3]: ("delivered", now - timedelta(seconds=600)),  # done
    }
    with session_scope(database_url) as session:
        for delivery_id, (status, at) in schedule.items():
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id)
                .values(status=status, next_attempt_at=at)
            )
    with session_scope(database_url) as session:
        due = due_deliveries(session, utcnow(), grace_s=60)
    assert ids[0] in due
    assert not set(ids[1:]) & set(due)


def test_backoff_schedule() -> None:
    delays = [backoff_s(n, BACKOFF_SCHEDULE_S) for n in range(1, 9)]
    assert delays == [5, 30, 120, 600, 1800, 3000, 3000, 3000]
    assert backoff_s(0, BACKOFF_SCHEDULE_S) == 0
    # Held-back messages stay below the broker's visibility timeout (else Redis hands them out twice).
    assert max(BACKOFF_SCHEDULE_S) < Settings().broker_visibility_timeout_s


def test_retry_delay_has_jitter_below_the_schedule() -> None:
    rng = random.Random(7)
    delays = [backoff_s(1, BACKOFF_SCHEDULE_S, jitter=BACKOFF_JITTER, rng=rng) for _ in range(200)]
    assert all(5 * (1 - BACKOFF_JITTER) <= d <= 5 for d in delays)
    assert len({round(d, 3) for d in delays}) > 100  # spread, not one value


def test_enqueue_deliveries_adds_each_id_once_to_the_due_set(clean_redis_url: str) -> None:
    app = make_celery(Settings(redis_url=clean_redis_url))
    before = time.time()
    enqueue_deliveries(app, ["msg_a", "msg_b", "msg_c"])
    enqueue_deliveries(app, ["msg_a", "msg_b"])  # again: still one entry each
    enqueue_deliveries(app, ["msg_later"], countdown=30)
    enqueue_deliveries(app, [])
    client = redis.Redis.from_url(clean_redis_url)
    try:
        due = {k.decode(): v for k, v in client.zrange(DUE_KEY, 0, -1, withscores=True)}
        celery_messages = client.llen("webhooks")
    finally:
        client.close()
    assert set(due) == {"msg_a", "msg_b", "msg_c", "msg_later"}
    assert before <= due["msg_a"] <= time.time()
    assert before + 29 <= due["msg_later"] <= time.time() + 30
    assert celery_messages == 0  # no Celery message: the due set is the queue
    app.close()
