"""`workers.webhooks`: the delivery loop against real local receivers, real Redis and a real database.

Each test starts from an empty Redis database (with its epoch written, as a running fleet has it) and
no pending delivery left by earlier tests (the `webhook_redis` fixture).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import pytest
import redis
from standardwebhooks import Webhook

from shared.db import repository, session_scope
from shared.db.models import utcnow
from shared.errors import ConfigurationError
from shared.metrics import WEBHOOK_ATTEMPT_ERRORS, WEBHOOK_DELIVERIES, WEBHOOK_DELIVERY_LAG, WEBHOOK_PENDING
from shared.schemas import JobStatus
from shared.webhooks import USER_AGENT, deliveries_for
from shared.webhooks import queue as wq
from shared.webhooks.resend import reset_for_resend
from tests.utils.receiver import WebhookReceiver
from tests.utils.webhooks import (
    SECRET,
    MakeSettings,
    deliver_due,
    load_delivery,
    make_due,
    pending_delivery,
    set_delivery,
    verify,
)
from workers.webhooks import Deliverer, DeliveryThread


def _count(outcome: str) -> float:
    return float(WEBHOOK_DELIVERIES.labels(outcome=outcome)._value.get())


def test_delivery_is_signed_recorded_and_settled(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, webhook_redis: redis.Redis
) -> None:
    settings = make_settings()
    job_id, delivery_id = pending_delivery(database_url, receiver.url(), client=webhook_redis)
    _, started_id = pending_delivery(
        database_url, receiver.url(), "started", status=JobStatus.RUNNING, client=webhook_redis
    )
    delivered_before, lag_before = _count("delivered"), WEBHOOK_DELIVERY_LAG._sum.get()

    deliver_due(settings, webhook_redis)

    by_id = {r.headers["webhook-id"]: r for r in receiver.received()}
    assert set(by_id) == {delivery_id, started_id} and len(receiver.received()) == 2
    request = by_id[delivery_id]
    assert request.method == "POST" and request.path == "/hook"
    payload = verify(request)  # raises unless the signature matches
    assert abs(int(request.headers["webhook-timestamp"]) - utcnow().timestamp()) < 10
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT
    assert payload["type"] == "job.completed"
    assert datetime.fromisoformat(payload["timestamp"]).tzinfo is not None
    assert payload["data"]["id"] == job_id and payload["data"]["status"] == "succeeded"
    assert payload["data"]["result"] == {"label": "positive"}
    assert payload["data"]["webhook"] == receiver.url()
    assert verify(by_id[started_id])["type"] == "job.started"
    with pytest.raises(Exception, match="signature"):  # a tampered body does not verify
        Webhook(SECRET).verify(request.body.replace(b"positive", b"negative"), request.headers)

    row = load_delivery(database_url, delivery_id)
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == ("delivered", 1, 200, None)
    assert row.delivered_at is not None and row.next_attempt_at is None
    assert wq.pending_counts(webhook_redis) == (0, 0)  # settled: in neither set
    assert _count("delivered") == delivered_before + 2
    assert WEBHOOK_DELIVERY_LAG._sum.get() > lag_before
    with session_scope(database_url) as session:
        (out,) = deliveries_for(session, [job_id])[job_id]
    assert (out.id, out.status, out.attempts) == (delivery_id, "delivered", 1)

    # Done: queuing it again sends nothing (the row is not pending; the id is dropped).
    skipped_before = _count("skipped")
    wq.enqueue(webhook_redis, [delivery_id])
    deliver_due(settings, webhook_redis)
    assert len(receiver.received()) == 2
    assert _count("skipped") == skipped_before + 1
    assert wq.pending_counts(webhook_redis) == (0, 0)


def test_queued_many_times_is_sent_once(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, webhook_redis: redis.Redis
) -> None:
    settings = make_settings()
    ids = [pending_delivery(database_url, receiver.url())[1] for _ in range(30)]
    for _ in range(3):
        wq.enqueue(webhook_redis, ids)  # e.g. the API, a worker and the sweeper all enqueue them
    assert wq.pending_counts(webhook_redis) == (30, 0)
    skipped_before = _count("skipped")
    deliver_due(settings, webhook_redis)
    assert sorted(r.headers["webhook-id"] for r in receiver.received()) == sorted(ids)
    assert _count("skipped") == skipped_before


def test_two_workers_send_each_delivery_once(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, webhook_redis: redis.Redis
) -> None:
    settings = make_settings(webhook_batch=7)
    ids = [pending_delivery(database_url, receiver.url(), client=webhook_redis)[1] for _ in range(60)]

    async def main() -> None:
        one, two = Deliverer(settings, webhook_redis), Deliverer(settings, webhook_redis)
        try:
            await asyncio.gather(one.run_until_idle(30), two.run_until_idle(30))
        finally:
            await one.close()
            await two.close()

    asyncio.run(main())
    assert sorted(r.headers["webhook-id"] for r in receiver.received()) == sorted(ids)
    assert all(load_delivery(database_url, i).attempts == 1 for i in ids)


def test_failed_attempts_are_retried_with_backoff_under_the_same_id(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, webhook_redis: redis.Redis
) -> None:
    settings = make_settings()
    receiver.fail_first = 2
    _, delivery_id = pending_delivery(database_url, receiver.url(), client=webhook_redis)

    deliver_due(settings, webhook_redis)
    row = load_delivery(database_url, delivery_id)
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == ("pending", 1, 500, "HTTP 500")
    assert row.next_attempt_at is not None
    wait = (row.next_attempt_at - utcnow()).total_seconds()
    assert 3 < wait <= 5  # 5 s, less up to 20% jitter
    due = webhook_redis.zscore(wq.DUE_KEY, delivery_id)
    assert due == pytest.approx(row.next_attempt_at.timestamp(), abs=0.01)  # queued for then, once

    deliver_due(settings, webhook_redis)  # not due yet: nothing is sent
    assert len(receiver.received()) == 1

    make_due(database_url, webhook_redis, delivery_id)
    deliver_due(settings, webhook_redis)
    row = load_delivery(database_url, delivery_id)
    assert (row.status, row.attempts) == ("pending", 2)
    assert row.next_attempt_at is not None
    assert 23 < (row.next_attempt_at - utcnow()).total_seconds() <= 30

    make_due(database_url, webhook_redis, delivery_id)
    deliver_due(settings, webhook_redis)
    requests = receiver.received()
    assert len(requests) == 3
    assert {r.headers["webhook-id"] for r in requests} == {delivery_id}
    for request in requests:
        verify(request)
    assert len({r.body for r in requests}) == 1  # same event, same body
    row = load_delivery(database_url, delivery_id)
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == ("delivered", 3, 200, None)


@pytest.mark.parametrize("problem", ["redirect", "timeout", "connection"])
def test_failures_are_recorded_and_retried(
    problem: str, database_url: str, make_settings: MakeSettings, webhook_redis: redis.Redis
) -> None:
    settings = make_settings(webhook_timeout_s=0.5)
    with WebhookReceiver() as server:
        if problem == "redirect":
            server.redirect_to = "/elsewhere"
        elif problem == "timeout":
            server.delay_s = 5.0
        url = server.url()
        if problem == "connection":
            server.__exit__(None, None, None)  # nothing listens there any more
        _, delivery_id = pending_delivery(database_url, url, client=webhook_redis)
        kind = {"redirect": "redirect", "timeout": "timeout", "connection": "connect"}[problem]
        errors_before = WEBHOOK_ATTEMPT_ERRORS.labels(kind=kind)._value.get()
        deliverer = deliver_due(settings, webhook_redis)
        assert WEBHOOK_ATTEMPT_ERRORS.labels(kind=kind)._value.get() == errors_before + 1
        assert deliverer.endpoints.get(url).failures == 1  # counted towards its breaker
        if problem == "redirect":
            assert [r.path for r in server.received()] == ["/hook"]  # not followed
    row = load_delivery(database_url, delivery_id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error is not None
    expected = {"redirect": "redirects are not followed", "timeout": "timeout after 0.5 s"}
    assert expected.get(problem, "ConnectError") in row.last_error
    assert row.last_status_code == (302 if problem == "redirect" else None)
    assert webhook_redis.zscore(wq.DUE_KEY, delivery_id) is not None  # queued for its retry


def test_expired_and_orphaned_deliveries_fail(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, webhook_redis: redis.Redis
) -> None:
    settings = make_settings()
    max_age = timedelta(seconds=settings.webhook_max_age_s)
    receiver.fail_first = 100
    _, old_id = pending_delivery(database_url, receiver.url(), client=webhook_redis)
    set_delivery(database_url, old_id, created_at=utcnow() - max_age - timedelta(hours=1))
    _, late_id = pending_delivery(database_url, receiver.url(), client=webhook_redis)
    set_delivery(database_url, late_id, created_at=utcnow() - max_age + timedelta(seconds=3))
    gone_job, gone_id = pending_delivery(database_url, receiver.url(), client=webhook_redis)
    with session_scope(database_url) as session:
        repository.delete_jobs(session, [gone_job])

    deliver_due(settings, webhook_redis)

    old = load_delivery(database_url, old_id)
    assert (old.status, old.attempts) == ("failed", 0)
    assert old.last_error is not None and old.last_error.startswith("expired")
    late = load_delivery(database_url, late_id)  # its next retry would fall past the max age: the last one
    assert (late.status, late.attempts, late.last_status_code) == ("failed", 1, 500)
    assert "gave up after 1 attempts" in (late.last_error or "")
    gone = load_delivery(database_url, gone_id)
    assert gone.status == "failed" and gone.last_error == f"job {gone_job} no longer exists"
    assert [r.headers["webhook-id"] for r in receiver.received()] == [late_id]
    assert wq.pending_counts(webhook_redis) == (0, 0)


def test_a_lease_lost_with_its_worker_is_delivered_once(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, webhook_redis: redis.Redis
) -> None:
    settings = make_settings()
    ids = [pending_delivery(database_url, receiver.url(), client=webhook_redis)[1] for _ in range(5)]
    assert sorted(wq.pull(webhook_redis, 10, lease_s=0.2)) == sorted(ids)  # a worker took them and died
    deliver_due(settings, webhook_redis)
    assert receiver.received() == []  # still leased: nobody sends them
    assert WEBHOOK_PENDING._value.get() == 5  # but they count as pending
    time.sleep(0.3)
    deliver_due(settings, webhook_redis)  # the lease ended: reaped, then delivered
    assert sorted(r.headers["webhook-id"] for r in receiver.received()) == sorted(ids)


def test_after_redis_loses_everything_each_pending_delivery_is_sent_once(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, webhook_redis: redis.Redis
) -> None:
    settings = make_settings()
    ids = [pending_delivery(database_url, receiver.url(), client=webhook_redis)[1] for _ in range(40)]
    webhook_redis.flushdb()  # a Redis restart: the due set and the epoch are gone
    deliver_due(settings, webhook_redis)
    assert sorted(r.headers["webhook-id"] for r in receiver.received()) == sorted(ids)
    assert webhook_redis.exists(wq.EPOCH_KEY)
    assert wq.pending_counts(webhook_redis) == (0, 0)


def test_missing_secret_is_refused_before_anything_is_sent(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, webhook_redis: redis.Redis
) -> None:
    _, delivery_id = pending_delivery(database_url, receiver.url(), client=webhook_redis)
    with pytest.raises(ConfigurationError, match="WEBHOOK_SECRET"):
        Deliverer(make_settings(webhook_secret=""), webhook_redis)
    assert load_delivery(database_url, delivery_id).attempts == 0
    assert receiver.received() == []


def test_a_re_sent_delivery_gets_a_fresh_max_age_window(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, webhook_redis: redis.Redis
) -> None:
    settings = make_settings()
    job_id, delivery_id = pending_delivery(database_url, receiver.url(), client=webhook_redis)
    old = utcnow() - timedelta(seconds=settings.webhook_max_age_s) - timedelta(hours=1)
    set_delivery(database_url, delivery_id, created_at=old)
    deliver_due(settings, webhook_redis)
    assert load_delivery(database_url, delivery_id).status == "failed"  # expired, nothing sent
    assert receiver.received() == []

    with session_scope(database_url) as session:
        out = reset_for_resend(session, job_id, "completed")
    wq.enqueue(webhook_redis, [out.id])
    deliver_due(settings, webhook_redis)

    (request,) = receiver.received()
    assert request.headers["webhook-id"] == delivery_id
    assert verify(request)["timestamp"].startswith(old.date().isoformat())  # the event's own time
    row = load_delivery(database_url, delivery_id)
    assert (row.status, row.attempts) == ("delivered", 1)


def test_the_delivery_thread_idles_without_a_secret_and_delivers_with_one(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, webhook_redis: redis.Redis
) -> None:
    _, delivery_id = pending_delivery(database_url, receiver.url(), client=webhook_redis)
    idle = DeliveryThread(make_settings(webhook_secret=""))
    idle.start()
    time.sleep(0.5)
    assert idle.is_alive() and idle.error is None  # up, but sends nothing
    idle.stop(timeout=5)
    assert not idle.is_alive()
    assert receiver.received() == []

    running = DeliveryThread(make_settings())
    running.start()
    deadline = time.monotonic() + 20
    while load_delivery(database_url, delivery_id).status != "delivered":
        assert time.monotonic() < deadline and running.is_alive(), "not delivered"
        time.sleep(0.05)
    running.stop(timeout=20)
    assert not running.is_alive() and running.error is None
    assert [r.headers["webhook-id"] for r in receiver.received()] == [delivery_id]
