"""Deliveries of a tenant with its own webhook secret are signed with it; others with the global
secret (real local receiver, real Redis and databases)."""

from __future__ import annotations

import pytest
import redis
from sqlalchemy import update
from standardwebhooks import Webhook

from shared.db import session_scope
from shared.db.batch_models import Batch
from shared.db.models import Job
from shared.webhooks import queue as wq
from shared.webhooks import record_batch_event
from shared.webhooks.tenant_secrets import clear_tenant_webhook_secret, set_tenant_webhook_secret
from tests.utils.batches import batch_rows
from tests.utils.receiver import WebhookReceiver
from tests.utils.webhooks import (
    SECRET,
    MakeSettings,
    deliver_due,
    load_delivery,
    make_due,
    pending_delivery,
    verify,
)


def _job_of(database_url: str, job_id: str, tenant: str) -> None:
    with session_scope(database_url) as session:
        session.execute(update(Job).where(Job.id == job_id).values(tenant_id=tenant))


def test_a_tenant_secret_signs_that_tenants_deliveries_only(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, webhook_redis: redis.Redis
) -> None:
    with session_scope(database_url) as session:
        own = set_tenant_webhook_secret(session, "acme-hooks")
    acme_job, acme_id = pending_delivery(database_url, receiver.url("/acme"), client=webhook_redis)
    _job_of(database_url, acme_job, "acme-hooks")
    other_job, other_id = pending_delivery(database_url, receiver.url("/other"), client=webhook_redis)
    _job_of(database_url, other_job, "other-hooks")  # a tenant without a secret of its own
    batch_id = batch_rows(database_url, 1, webhook=receiver.url("/batch"))
    with session_scope(database_url) as session:
        session.execute(update(Batch).where(Batch.id == batch_id).values(tenant_id="acme-hooks"))
        row = record_batch_event(session, batch_id, receiver.url("/batch"), "completed")
        assert row is not None
        batch_delivery = row.id
    wq.enqueue(webhook_redis, [batch_delivery])

    deliver_due(make_settings(), webhook_redis)

    for delivery in (acme_id, other_id, batch_delivery):
        assert load_delivery(database_url, delivery).status == "delivered"
    (acme,) = receiver.received("/acme")
    (batch,) = receiver.received("/batch")
    (other,) = receiver.received("/other")
    for request in (acme, batch):
        assert Webhook(own).verify(request.body, request.headers)
        with pytest.raises(Exception, match="signature"):
            verify(request)  # not the global secret
    assert verify(other)["data"]["id"] == other_job
    with pytest.raises(Exception, match="signature"):
        Webhook(own).verify(other.body, other.headers)


def test_a_changed_or_cleared_secret_applies_to_the_next_attempt(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, webhook_redis: redis.Redis
) -> None:
    settings = make_settings()
    receiver.fail_first = 2
    with session_scope(database_url) as session:
        first = set_tenant_webhook_secret(session, "rotating")
    job_id, delivery_id = pending_delivery(database_url, receiver.url(), client=webhook_redis)
    _job_of(database_url, job_id, "rotating")

    deliver_due(settings, webhook_redis)
    with session_scope(database_url) as session:
        second = set_tenant_webhook_secret(session, "rotating")
    make_due(database_url, webhook_redis, delivery_id)
    deliver_due(settings, webhook_redis)
    with session_scope(database_url) as session:
        assert clear_tenant_webhook_secret(session, "rotating")
    make_due(database_url, webhook_redis, delivery_id)
    deliver_due(settings, webhook_redis)

    assert load_delivery(database_url, delivery_id).status == "delivered"
    one, two, three = receiver.received()
    assert Webhook(first).verify(one.body, one.headers)
    assert Webhook(second).verify(two.body, two.headers)
    assert Webhook(SECRET).verify(three.body, three.headers)
    assert first != second
