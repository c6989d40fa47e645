"""Helpers of the webhook delivery tests: delivery rows, row edits, running a deliverer to idle."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import redis
from sqlalchemy import update
from standardwebhooks import Webhook

from shared.db import session_scope
from shared.db.models import WebhookDelivery, utcnow
from shared.schemas import JobStatus
from shared.settings import Settings
from shared.webhooks import queue as wq
from shared.webhooks import record_event
from tests.utils.factories import add_jobs, webhook_job_row
from workers.webhooks import Deliverer

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()

MakeSettings = Callable[..., Settings]


def pending_delivery(
    database_url: str,
    url: str,
    event: str = "completed",
    *,
    status: JobStatus = JobStatus.SUCCEEDED,
    client: redis.Redis | None = None,
) -> tuple[str, str]:
    """A job with a webhook and the delivery row of `event` (queued when `client` is given)."""
    job = webhook_job_row(url, ["started", "completed"])
    job.status = status.value
    job.result = {"label": "positive"}
    with session_scope(database_url) as session:
        add_jobs(session, [job])
        row = record_event(session, job, event)
    assert row is not None
    if client is not None:
        wq.enqueue(client, [row.id])
    return job.id, row.id


def load_delivery(database_url: str, delivery_id: str) -> WebhookDelivery:
    with session_scope(database_url) as session:
        row = session.get(WebhookDelivery, delivery_id)
        assert row is not None
        return row


def set_delivery(database_url: str, delivery_id: str, **values: Any) -> None:
    with session_scope(database_url) as session:
        session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(**values))


def make_due(database_url: str, client: redis.Redis, delivery_id: str) -> None:
    """Time passes: the next attempt is due now."""
    set_delivery(database_url, delivery_id, next_attempt_at=utcnow() - timedelta(seconds=1))
    wq.enqueue(client, [delivery_id], at=time.time() - 1)


def deliver_due(settings: Settings, client: redis.Redis, timeout_s: float = 30) -> Deliverer:
    """Deliver everything due now (as a worker's loop would), then return the deliverer."""

    async def main() -> Deliverer:
        deliverer = Deliverer(settings, client)
        try:
            await deliverer.run_until_idle(timeout_s)
        finally:
            await deliverer.close()
        return deliverer

    return asyncio.run(main())


def verify(received: Any) -> Any:
    """The payload of a received request; raises unless its signature matches."""
    return Webhook(SECRET).verify(received.body, received.headers)
