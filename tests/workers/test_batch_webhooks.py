"""A batch's webhook event end to end: the batch ends (as the sweeper moves it), its one delivery is
recorded and enqueued, and the real delivery loop of a webhook worker sends a signed `batch.<status>`
with the batch object to a real local receiver (real Redis, PostgreSQL and SQLite)."""

from __future__ import annotations

import time

import redis
from sqlalchemy import delete, select

from shared import batches
from shared.db import session_scope
from shared.db.batch_models import Batch
from shared.db.models import WebhookDelivery
from tests.utils.batches import batch_job_ids, batch_rows, finish_batch_jobs
from tests.utils.receiver import WebhookReceiver
from tests.utils.webhooks import MakeSettings, deliver_due, load_delivery, verify
from workers.webhooks import DeliveryThread


def _sweep(database_url: str, client: redis.Redis) -> None:
    with session_scope(database_url) as session:
        batches.advance_active(session, client, limit=10_000)


def _delivery_id(database_url: str, batch_id: str) -> str:
    with session_scope(database_url) as session:
        return session.scalars(select(WebhookDelivery.id).where(WebhookDelivery.batch_id == batch_id)).one()


def test_a_completed_batch_sends_one_signed_batch_completed_with_the_batch(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, webhook_redis: redis.Redis
) -> None:
    batch_id = batch_rows(database_url, 3, webhook=receiver.url())
    ids = list(batch_job_ids(database_url, batch_id).values())
    finish_batch_jobs(database_url, ids[:2])
    finish_batch_jobs(database_url, ids[2:], status="failed")
    running = DeliveryThread(make_settings())  # the loop `textfleet worker --queues webhooks` runs
    running.start()
    try:
        _sweep(database_url, webhook_redis)
        _sweep(database_url, webhook_redis)  # a second sweep moves nothing and records nothing
        delivery_id = _delivery_id(database_url, batch_id)
        deadline = time.monotonic() + 20
        while load_delivery(database_url, delivery_id).status != "delivered":
            assert time.monotonic() < deadline and running.is_alive(), "not delivered"
            time.sleep(0.05)
    finally:
        running.stop(timeout=20)
    assert running.error is None

    [request] = receiver.received()
    assert request.headers["webhook-id"] == delivery_id
    payload = verify(request)  # raises unless the signature matches
    assert payload["type"] == "batch.completed"
    batch = payload["data"]
    assert (batch["id"], batch["object"], batch["status"]) == (batch_id, "batch", "completed")
    assert batch["request_counts"] == {"total": 3, "completed": 2, "failed": 1}
    assert batch["completed_at"] is not None and batch["endpoint"] == "/v1/moderations"
    row = load_delivery(database_url, delivery_id)
    assert (row.event, row.attempts, row.last_status_code, row.job_id) == ("completed", 1, 200, None)


def test_a_cancelled_batch_sends_batch_cancelled(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, webhook_redis: redis.Redis
) -> None:
    batch_id = batch_rows(database_url, 2, status="cancelling", webhook=receiver.url())
    finish_batch_jobs(database_url, list(batch_job_ids(database_url, batch_id).values()), status="canceled")
    _sweep(database_url, webhook_redis)
    deliver_due(make_settings(), webhook_redis)
    [request] = receiver.received()
    payload = verify(request)
    assert payload["type"] == "batch.cancelled" and payload["data"]["status"] == "cancelled"
    assert payload["data"]["request_counts"] == {"total": 2, "completed": 0, "failed": 2}


def test_the_event_of_a_batch_that_is_gone_fails_without_a_request(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, webhook_redis: redis.Redis
) -> None:
    batch_id = batch_rows(database_url, 1, expires_in_s=-1, webhook=receiver.url())
    _sweep(database_url, webhook_redis)
    delivery_id = _delivery_id(database_url, batch_id)
    with session_scope(database_url) as session:
        session.execute(delete(Batch).where(Batch.id == batch_id))
    deliver_due(make_settings(), webhook_redis)
    assert receiver.received() == []
    row = load_delivery(database_url, delivery_id)
    assert row.status == "failed" and row.last_error == f"batch {batch_id} no longer exists"
