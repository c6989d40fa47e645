"""The sweeper's webhook stage: it re-sends only deliveries whose enqueue was lost, never one that is
waiting in the due set behind a backlog (the congestion collapse of issue 17)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import redis

from shared.db.models import utcnow
from shared.queueing import make_celery
from shared.webhooks import queue as wq
from tests.utils.receiver import WebhookReceiver
from tests.utils.webhooks import MakeSettings, pending_delivery, set_delivery
from workers.sweeper import sweep


def test_only_deliveries_in_neither_set_are_re_sent(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, webhook_redis: redis.Redis
) -> None:
    settings = make_settings(sweep_interval_s=1)
    long_ago = utcnow() - timedelta(minutes=10)
    in_flight = pending_delivery(database_url, receiver.url(), client=webhook_redis)[1]
    assert wq.pull(webhook_redis, 100, lease_s=60) == [in_flight]  # a worker holds it
    waiting = [pending_delivery(database_url, receiver.url(), client=webhook_redis)[1] for _ in range(20)]
    lost = pending_delivery(database_url, receiver.url())[1]  # committed, never reached Redis
    for delivery_id in [*waiting, in_flight, lost]:
        set_delivery(database_url, delivery_id, next_attempt_at=long_ago)  # all look overdue
    wq.enqueue(webhook_redis, waiting, at=time.time() - 600)  # waiting behind a backlog
    before = dict(webhook_redis.zrange(wq.DUE_KEY, 0, -1, withscores=True))
    celery = make_celery(settings)

    done = sweep(settings, webhook_redis, celery)

    assert done["webhooks_resent"] == 1
    due = {k.decode(): v for k, v in webhook_redis.zrange(wq.DUE_KEY, 0, -1, withscores=True)}
    assert set(due) == {*waiting, lost}
    assert {k.decode(): v for k, v in before.items() if k.decode() in waiting} == {
        k: v for k, v in due.items() if k in waiting
    }  # the waiting ones keep their place
    assert webhook_redis.zscore(wq.LEASED_KEY, in_flight) is not None

    again = sweep(settings, webhook_redis, celery)
    assert again["webhooks_resent"] == 0
    celery.close()


def test_a_delivery_settled_during_the_sweep_is_not_re_sent(
    database_url: str,
    make_settings: MakeSettings,
    receiver: WebhookReceiver,
    webhook_redis: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sweep reads overdue pending rows, then asks Redis which ids it lacks: a delivery that a worker
    delivered and settled in between is in neither set, yet not lost (it is read again)."""
    settings = make_settings(sweep_interval_s=1)
    delivery_id = pending_delivery(database_url, receiver.url())[1]
    set_delivery(database_url, delivery_id, next_attempt_at=utcnow() - timedelta(minutes=10))
    real_missing = wq.missing

    def missing_after_a_worker_settled_it(client: redis.Redis, ids: list[str]) -> list[str]:
        set_delivery(database_url, delivery_id, status="delivered")  # a worker finished it meanwhile
        return real_missing(client, ids)

    monkeypatch.setattr(wq, "missing", missing_after_a_worker_settled_it)
    celery = make_celery(settings)
    done = sweep(settings, webhook_redis, celery)
    celery.close()
    assert done["webhooks_resent"] == 0
    assert webhook_redis.zscore(wq.DUE_KEY, delivery_id) is None
