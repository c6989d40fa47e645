"""Per-endpoint limits and circuit breakers: a hanging or failing receiver only delays its own events.

Real receivers (a fast one, one that hangs past the timeout, one that answers 500) on real Redis and a
real database; the breaker's state machine also on its own (a fast unit)."""

from __future__ import annotations

import asyncio
import time

import redis

from shared.db import session_scope
from shared.db.models import WebhookDelivery
from shared.metrics import WEBHOOK_BREAKERS_OPEN
from shared.webhooks import queue as wq
from tests.utils.receiver import WebhookReceiver
from tests.utils.webhooks import MakeSettings, load_delivery, pending_delivery
from workers.webhooks import Deliverer, Endpoint, origin


def _endpoint(limit: int = 2) -> Endpoint:
    return Endpoint(limit=limit, failures_to_open=3, base_cooldown_s=5.0, max_cooldown_s=12.0)


def test_origin_is_scheme_host_and_port() -> None:
    assert origin("https://Hooks.Example.com/a?b=1") == "https://hooks.example.com:443"
    assert origin("http://127.0.0.1:8080/x") == "http://127.0.0.1:8080"
    assert origin("http://127.0.0.1/x") == origin("http://127.0.0.1:80/y")


def test_endpoint_limit_and_breaker_states() -> None:
    e = _endpoint()
    assert e.admit(0.0) is None and e.admit(0.0) is None
    assert e.admit(0.0) is not None  # full: wait about one response time
    assert e.done(False, 0.1, 1.0) is False
    assert e.done(False, 0.1, 1.0) is False
    assert e.admit(1.0) is None
    assert e.done(False, 0.1, 1.0) is True  # third failure in a row: open
    assert e.state == "open" and e.open_until == 6.0
    assert e.admit(2.0) == 4.0  # deferred to the end of the cooldown
    assert e.admit(6.0) is None and e.state == "half_open"  # one probe
    assert e.admit(6.0) is not None  # only one
    assert e.done(False, 0.1, 7.0) is True  # the probe failed: open again, cooldown doubled
    assert (e.state, e.cooldown_s, e.open_until) == ("open", 10.0, 17.0)
    assert e.admit(17.0) is None
    assert e.done(False, 0.1, 18.0) is True
    assert e.cooldown_s == 12.0  # capped
    assert e.admit(30.0) is None
    assert e.done(True, 0.1, 30.0) is False  # the probe succeeded: closed
    assert (e.state, e.failures, e.in_flight) == ("closed", 0, 0)
    assert e.admit(30.0) is None and e.admit(30.0) is None


def test_a_hanging_and_a_failing_endpoint_only_delay_their_own_events(
    database_url: str, make_settings: MakeSettings, webhook_redis: redis.Redis
) -> None:
    settings = make_settings(
        webhook_timeout_s=3.0,
        webhook_endpoint_concurrency=4,
        webhook_breaker_failures=3,
        webhook_breaker_cooldown_s=60,
    )
    with WebhookReceiver() as fast, WebhookReceiver() as hanging, WebhookReceiver() as failing:
        hanging.delay_s = 30.0
        failing.fail_first = 10**6
        fast_ids = [pending_delivery(database_url, fast.url(), client=webhook_redis)[1] for _ in range(60)]
        hang_ids = [pending_delivery(database_url, hanging.url(), client=webhook_redis)[1] for _ in range(30)]
        fail_ids = [pending_delivery(database_url, failing.url(), client=webhook_redis)[1] for _ in range(30)]

        async def main() -> tuple[float, float]:
            deliverer = Deliverer(settings, webhook_redis)
            started = time.monotonic()
            try:
                run = asyncio.create_task(deliverer.run())
                while len(fast.received()) < len(fast_ids):
                    assert time.monotonic() - started < 20, "fast deliveries were held up"
                    await asyncio.sleep(0.01)
                fast_done = time.monotonic() - started
                await asyncio.sleep(settings.webhook_timeout_s + 1.5)  # the hanging ones time out
                await deliverer._maintenance()
                deliverer._next_maintenance = 0.0
                await deliverer._maintenance()
                deliverer.stopping.set()
                await run
            finally:
                await deliverer.close()
            return fast_done, WEBHOOK_BREAKERS_OPEN._value.get()

        fast_done, breakers = asyncio.run(main())
        hang_requests, fail_requests = len(hanging.received()), len(failing.received())

    # The fast endpoint did not wait for the hanging one's timeout.
    assert fast_done < settings.webhook_timeout_s
    assert all(load_delivery(database_url, i).status == "delivered" for i in fast_ids)
    # The bad endpoints got at most what their concurrency limit lets start before their breaker
    # opened: the first failures free slots (4 in flight, then one more per failure before the third).
    most = settings.webhook_endpoint_concurrency + settings.webhook_breaker_failures - 1
    assert 1 <= hang_requests <= most
    assert settings.webhook_breaker_failures <= fail_requests <= most + 1
    assert breakers == 2
    # ... and their other events wait in the due set for the end of the cooldown, not attempted.
    with session_scope(database_url) as session:
        attempts = {
            r.id: r.attempts
            for r in session.query(WebhookDelivery).filter(WebhookDelivery.id.in_(hang_ids + fail_ids))
        }
    assert sum(attempts.values()) == hang_requests + fail_requests
    assert all(load_delivery(database_url, i).status == "pending" for i in hang_ids + fail_ids)
    now = time.time()
    scores = [webhook_redis.zscore(wq.DUE_KEY, i) for i in hang_ids + fail_ids]
    assert all(s is not None for s in scores)
    assert sum(1 for s in scores if s is not None and s > now + 4) >= len(scores) - 8
