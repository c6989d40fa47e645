"""`workers.webhooks`: signed deliveries to a real local HTTP receiver, retries, refusals, expiry."""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import update
from standardwebhooks import Webhook

import workers.webhooks as worker_webhooks
from shared.constants import WEBHOOK_TASK
from shared.db import repository, session_scope
from shared.db.models import Job, WebhookDelivery, utcnow
from shared.errors import ConfigurationError
from shared.queueing import make_celery
from shared.schemas import JobStatus
from shared.settings import Settings, get_settings
from shared.webhooks import USER_AGENT, deliveries_for, record_event
from tests.utils.factories import webhook_job_row
from tests.utils.receiver import WebhookReceiver
from workers.webhooks import DeliveryOutcome, deliver, make_http_client, register_webhook_task

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()

MakeSettings = Callable[..., Settings]


@pytest.fixture
def make_settings(settings_env: None, monkeypatch: pytest.MonkeyPatch) -> MakeSettings:
    """Settings for this session's services, with a webhook secret; keyword overrides are
    TEXTFLEET_<NAME> values (e.g. webhook_allow_private=False)."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "webhook_secret": SECRET,
            "webhook_allow_private": True,
            "webhook_timeout_s": 2.0,
            **overrides,
        }
        for name, value in values.items():
            env = json.dumps(value) if isinstance(value, bool) else str(value)
            monkeypatch.setenv(f"TEXTFLEET_{name.upper()}", env)
        get_settings.cache_clear()
        return get_settings()

    return make


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with make_http_client(Settings(webhook_timeout_s=2.0)) as client:
        yield client


def _pending(
    database_url: str, url: str, event: str = "completed", *, status: JobStatus = JobStatus.SUCCEEDED
) -> tuple[str, str]:
    """A job with a webhook and the delivery row of `event`: (job id, delivery id)."""
    job = webhook_job_row(url, ["started", "completed"])
    job.status = status.value
    job.result = {"label": "positive"}
    with session_scope(database_url) as session:
        repository.insert_jobs(session, [job])
        row = record_event(session, job, event)
    assert row is not None
    return job.id, row.id


def _row(database_url: str, delivery_id: str) -> WebhookDelivery:
    with session_scope(database_url) as session:
        row = session.get(WebhookDelivery, delivery_id)
        assert row is not None
        return row


def _set(database_url: str, delivery_id: str, **values: Any) -> None:
    with session_scope(database_url) as session:
        session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(**values))


def _make_due(database_url: str, delivery_id: str) -> None:
    """Time passes: the next attempt is due now."""
    _set(database_url, delivery_id, next_attempt_at=utcnow() - timedelta(seconds=1))


def _verify(received: Any) -> Any:
    return Webhook(SECRET).verify(received.body, received.headers)


def test_delivery_is_signed_and_recorded(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, http: httpx.Client
) -> None:
    settings = make_settings()
    job_id, delivery_id = _pending(database_url, receiver.url())

    outcome = deliver(delivery_id, settings, http=http)

    assert outcome == DeliveryOutcome(delivery_id, "delivered", attempts=1, status_code=200)
    (request,) = receiver.received()
    assert request.method == "POST" and request.path == "/hook"
    payload = _verify(request)  # raises unless the signature matches
    assert request.headers["webhook-id"] == delivery_id
    assert abs(int(request.headers["webhook-timestamp"]) - utcnow().timestamp()) < 10
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT
    assert payload["type"] == "job.completed"
    assert datetime.fromisoformat(payload["timestamp"]).tzinfo is not None
    assert payload["data"]["id"] == job_id
    assert payload["data"]["status"] == "succeeded"
    assert payload["data"]["result"] == {"label": "positive"}
    assert payload["data"]["webhook"] == receiver.url()
    with pytest.raises(Exception, match="signature"):  # a tampered body does not verify
        Webhook(SECRET).verify(request.body.replace(b"positive", b"negative"), request.headers)

    row = _row(database_url, delivery_id)
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == ("delivered", 1, 200, None)
    assert row.delivered_at is not None and row.next_attempt_at is None
    # Done: another message for it changes nothing and sends nothing.
    assert deliver(delivery_id, settings, http=http).status == "skipped"
    assert len(receiver.received()) == 1
    with session_scope(database_url) as session:
        (out,) = deliveries_for(session, [job_id])[job_id]
    assert (out.id, out.event, out.status, out.attempts) == (delivery_id, "completed", "delivered", 1)


def test_started_event_type(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, http: httpx.Client
) -> None:
    _, delivery_id = _pending(database_url, receiver.url(), "started", status=JobStatus.RUNNING)
    assert deliver(delivery_id, make_settings(), http=http).status == "delivered"
    payload = _verify(receiver.received()[0])
    assert payload["type"] == "job.started"
    assert payload["data"]["status"] == "running"


def test_failed_attempts_are_retried_with_the_same_webhook_id(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, http: httpx.Client
) -> None:
    settings = make_settings()
    receiver.fail_first = 2
    _, delivery_id = _pending(database_url, receiver.url())

    first = deliver(delivery_id, settings, http=http)
    assert (first.status, first.attempts, first.status_code, first.error) == ("retry", 1, 500, "HTTP 500")
    assert first.retry_in is not None and 3 < first.retry_in <= 5
    row = _row(database_url, delivery_id)
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == ("pending", 1, 500, "HTTP 500")
    assert row.next_attempt_at == first.next_attempt_at

    # A message that comes before the row's next_attempt_at (a duplicate) sends nothing.
    assert deliver(delivery_id, settings, http=http).error == "not due"
    assert len(receiver.received()) == 1

    _make_due(database_url, delivery_id)
    second = deliver(delivery_id, settings, http=http)
    assert (second.status, second.attempts) == ("retry", 2)
    assert second.retry_in is not None and 25 < second.retry_in <= 30

    _make_due(database_url, delivery_id)
    third = deliver(delivery_id, settings, http=http)
    assert (third.status, third.attempts, third.status_code) == ("delivered", 3, 200)

    requests = receiver.received()
    assert len(requests) == 3
    assert {r.headers["webhook-id"] for r in requests} == {delivery_id}
    for request in requests:
        _verify(request)
    assert len({r.body for r in requests}) == 1  # same event, same body
    row = _row(database_url, delivery_id)
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == ("delivered", 3, 200, None)
    assert row.delivered_at is not None


def test_redirect_is_a_failure_and_is_not_followed(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, http: httpx.Client
) -> None:
    receiver.redirect_to = "/elsewhere"
    _, delivery_id = _pending(database_url, receiver.url())

    outcome = deliver(delivery_id, make_settings(), http=http)

    assert (outcome.status, outcome.status_code) == ("retry", 302)
    assert outcome.error is not None and "redirect" in outcome.error
    assert [r.path for r in receiver.received()] == ["/hook"]
    assert receiver.received("/elsewhere") == []
    row = _row(database_url, delivery_id)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 302)


def test_timeout_is_a_failure(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, http: httpx.Client
) -> None:
    settings = make_settings(webhook_timeout_s=0.5)
    receiver.delay_s = 5.0
    _, delivery_id = _pending(database_url, receiver.url())

    outcome = deliver(delivery_id, settings, http=http)

    assert (outcome.status, outcome.status_code) == ("retry", None)
    assert outcome.error is not None and outcome.error.startswith("timeout after 0.5 s")
    row = _row(database_url, delivery_id)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, None)
    assert row.last_error is not None and "timeout" in row.last_error


def test_connection_error_is_a_failure(
    database_url: str, make_settings: MakeSettings, http: httpx.Client
) -> None:
    with WebhookReceiver() as gone:
        url = gone.url()  # nothing listens there once it is closed
    _, delivery_id = _pending(database_url, url)
    outcome = deliver(delivery_id, make_settings(), http=http)
    assert (outcome.status, outcome.attempts) == ("retry", 1)
    assert outcome.error is not None and "ConnectError" in outcome.error


def test_private_address_is_refused_unless_allowed(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, http: httpx.Client
) -> None:
    _, refused_id = _pending(database_url, receiver.url())
    _, by_name_id = _pending(database_url, receiver.url().replace("127.0.0.1", "localhost"))
    strict = make_settings(webhook_allow_private=False)

    refused = deliver(refused_id, strict, http=http)
    by_name = deliver(by_name_id, strict, http=http)

    assert (refused.status, refused.attempts) == ("failed", 1)
    assert refused.error is not None and "non-public address (127.0.0.1)" in refused.error
    assert by_name.status == "failed" and by_name.error is not None and "non-public" in by_name.error
    row = _row(database_url, refused_id)
    assert row.status == "failed" and row.last_error == refused.error and row.next_attempt_at is None
    assert receiver.received() == []

    _, allowed_id = _pending(database_url, receiver.url())
    allowed = deliver(allowed_id, make_settings(webhook_allow_private=True), http=http)
    assert allowed.status == "delivered"
    assert len(receiver.received()) == 1


def test_the_request_goes_to_the_address_that_was_checked(
    database_url: str,
    make_settings: MakeSettings,
    receiver: WebhookReceiver,
    http: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the address policy on, the host is resolved once, checked, and the request is sent to that
    address with the name in the Host header: a second DNS answer cannot send it elsewhere. (The
    policy is told 127.0.0.1 is public, as no public address is reachable in tests; the name does
    not resolve at all, so the request can only have reached the checked address.)"""
    checked: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[str]:
        checked.append((host, port))
        return ["127.0.0.1"]

    monkeypatch.setattr(worker_webhooks, "resolve_public_addresses", resolve)
    url = f"http://hooks.textfleet.invalid:{receiver.port}/hook"
    _, delivery_id = _pending(database_url, url)

    outcome = deliver(delivery_id, make_settings(webhook_allow_private=False), http=http)

    assert outcome.status == "delivered"
    assert checked == [("hooks.textfleet.invalid", receiver.port)]
    (request,) = receiver.received()
    assert request.headers["host"] == f"hooks.textfleet.invalid:{receiver.port}"
    _verify(request)


def test_unsupported_scheme_fails_permanently(
    database_url: str, make_settings: MakeSettings, http: httpx.Client
) -> None:
    _, delivery_id = _pending(database_url, "ftp://example.com/hook")
    outcome = deliver(delivery_id, make_settings(), http=http)
    assert outcome.status == "failed"
    assert outcome.error is not None and "scheme must be http or https" in outcome.error


def test_expired_delivery_fails(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, http: httpx.Client
) -> None:
    settings = make_settings()
    max_age = timedelta(seconds=settings.webhook_max_age_s)
    receiver.fail_first = 100

    # Past the max age before any attempt: failed, nothing sent.
    _, old_id = _pending(database_url, receiver.url())
    _set(database_url, old_id, created_at=utcnow() - max_age - timedelta(hours=1))
    old = deliver(old_id, settings, http=http)
    assert (old.status, old.attempts) == ("failed", 0)
    assert old.error is not None and old.error.startswith("expired")
    assert receiver.received() == []
    row = _row(database_url, old_id)
    assert row.status == "failed" and row.last_error == old.error

    # An attempt whose next retry would fall past the max age is the last one.
    _, late_id = _pending(database_url, receiver.url())
    _set(database_url, late_id, created_at=utcnow() - max_age + timedelta(seconds=3))
    late = deliver(late_id, settings, http=http)
    assert (late.status, late.attempts, late.status_code) == ("failed", 1, 500)
    assert late.error is not None and "gave up after 1 attempts" in late.error
    row = _row(database_url, late_id)
    assert (row.status, row.attempts, row.last_status_code) == ("failed", 1, 500)
    assert row.next_attempt_at is None
    assert len(receiver.received()) == 1


def test_two_messages_for_one_delivery_make_one_attempt(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, http: httpx.Client
) -> None:
    settings = make_settings()
    receiver.delay_s = 0.5
    _, delivery_id = _pending(database_url, receiver.url())
    outcomes: list[DeliveryOutcome] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        outcomes.append(deliver(delivery_id, settings, http=http))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(o.status for o in outcomes) == ["delivered", "skipped"]
    assert len(receiver.received()) == 1
    assert _row(database_url, delivery_id).attempts == 1


def test_missing_job_and_missing_secret(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, http: httpx.Client
) -> None:
    job_id, delivery_id = _pending(database_url, receiver.url())
    with session_scope(database_url) as session:
        repository.delete_jobs(session, [job_id])
    outcome = deliver(delivery_id, make_settings(), http=http)
    assert outcome.status == "failed" and outcome.error == f"job {job_id} no longer exists"
    assert deliver("msg_nope", make_settings(), http=http).status == "skipped"

    _, other_id = _pending(database_url, receiver.url())
    no_secret = make_settings(webhook_secret="")
    with pytest.raises(ConfigurationError, match="WEBHOOK_SECRET"):
        deliver(other_id, no_secret, http=http)
    assert _row(database_url, other_id).attempts == 0
    assert receiver.received() == []


def test_task_re_enqueues_itself_with_a_countdown(
    database_url: str,
    make_settings: MakeSettings,
    receiver: WebhookReceiver,
    http: httpx.Client,
    clean_redis_url: str,
) -> None:
    settings = make_settings()
    app = make_celery(settings)
    register_webhook_task(app, settings=lambda: settings, http=lambda _s: http)
    task = app.tasks[WEBHOOK_TASK]
    assert task.acks_late is True
    receiver.fail_first = 1
    _, delivery_id = _pending(database_url, receiver.url())

    assert task(delivery_id) == "retry"  # runs the body here; the retry goes to the broker

    client = redis.Redis.from_url(clean_redis_url)
    try:
        (raw,) = client.lrange("webhooks", 0, -1)
    finally:
        client.close()
    message = json.loads(raw)
    assert message["headers"]["task"] == WEBHOOK_TASK
    args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    assert args == [delivery_id]
    eta = datetime.fromisoformat(message["headers"]["eta"])
    assert timedelta(seconds=2) < eta - utcnow() <= timedelta(seconds=5)

    _make_due(database_url, delivery_id)
    assert task(delivery_id) == "delivered"
    app.close()


def test_job_row_is_untouched(database_url: str, make_settings: MakeSettings, http: httpx.Client) -> None:
    """Delivering never writes the job itself."""
    with WebhookReceiver() as server:
        job_id, delivery_id = _pending(database_url, server.url())
        deliver(delivery_id, make_settings(), http=http)
    with session_scope(database_url) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == "succeeded" and job.attempts == 0
