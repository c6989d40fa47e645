"""Delivering webhook events: one signed POST per attempt, outcomes written to the delivery row.

`deliver` makes one attempt of one delivery and is independent of Celery (tests call it directly);
`register_webhook_task` puts it on a Celery app as `WEBHOOK_TASK`, which re-enqueues itself with a
`countdown` while retries are due. Webhook workers (`--queues webhooks`) load no model.

An attempt:

1. reads the row; does nothing if it is not `pending`, not yet due (an early or duplicate message), or
   ends it `failed` if `webhook_max_age_s` has passed since the event;
2. claims the attempt with a conditional update (`attempts` + 1 where `attempts` is what it read, and a
   lease on `next_attempt_at`), so two messages for one delivery never POST at once, and a worker that
   dies mid-attempt leaves a row the sweeper re-sends once the lease is over;
3. checks the URL (http/https only; unless `webhook_allow_private`, every address the host resolves to
   must be public, and the request is sent to the checked address, so a second DNS answer cannot
   redirect it);
4. POSTs `{"type", "timestamp", "data": JobOut}` with the Standard Webhooks headers, never following a
   redirect, within `webhook_timeout_s`;
5. writes the outcome while the row is still `pending` at that attempt: `delivered`, or `pending` with
   the next `next_attempt_at` (`shared.webhooks.backoff_schedule`), or `failed` when the next attempt
   would fall past the max age or the URL is refused.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx
import structlog
from celery import Celery
from sqlalchemy import update
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from shared.constants import WEBHOOK_TASK, Queue
from shared.db import session_scope
from shared.db.models import Job, WebhookDelivery, utcnow
from shared.db.repository import to_out
from shared.errors import ConfigurationError
from shared.metrics import WEBHOOK_DELIVERIES
from shared.settings import Settings, get_settings
from shared.webhooks import (
    EVENT_TYPES,
    USER_AGENT,
    UnsafeWebhookURLError,
    backoff_schedule,
    check_url_scheme,
    resolve_public_addresses,
)

__all__ = [
    "EARLY_TOLERANCE_S",
    "DeliveryOutcome",
    "build_payload",
    "close_process_http_client",
    "deliver",
    "lease_s",
    "make_http_client",
    "process_http_client",
    "register_webhook_task",
]

log = structlog.get_logger(__name__)

#: A message that arrives this much before the row's `next_attempt_at` still counts as due (clock
#: skew between workers, timer jitter); earlier ones are duplicates and are dropped.
EARLY_TOLERANCE_S = 2.0
#: Longest `last_error` stored (the column's size).
_MAX_ERROR = 500

OutcomeStatus = Literal["delivered", "retry", "failed", "skipped"]


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one call of `deliver` did."""

    delivery_id: str
    #: delivered: got a 2xx. retry: this attempt failed, another is due at `next_attempt_at`.
    #: failed: no more attempts (refused URL, or past the max age). skipped: nothing was attempted.
    status: OutcomeStatus
    attempts: int = 0
    status_code: int | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None

    @property
    def retry_in(self) -> float | None:
        """Seconds from now until the next attempt, when one is due."""
        if self.status != "retry" or self.next_attempt_at is None:
            return None
        return max(0.0, (self.next_attempt_at - utcnow()).total_seconds())


def lease_s(settings: Settings) -> float:
    """How long a claimed attempt holds the row (DNS + connect + write + read, with slack)."""
    return 3 * settings.webhook_timeout_s + 30.0


# --- HTTP client ----------------------------------------------------------------------------------


def make_http_client(settings: Settings) -> httpx.Client:
    """An HTTP client for deliveries: no redirects, the delivery timeout, no proxies from the
    environment (the destination check must see the real destination)."""
    return httpx.Client(
        follow_redirects=False,
        timeout=settings.webhook_timeout_s,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
    )


_client_lock = threading.Lock()
_client: tuple[int, httpx.Client] | None = None


def process_http_client(settings: Settings) -> httpx.Client:
    """The delivery client of this process (created on first use; a forked child makes its own).
    Thread-safe: the task threads of a worker share it and its connection pool."""
    global _client
    with _client_lock:
        if _client is None or _client[0] != os.getpid():
            _client = (os.getpid(), make_http_client(settings))
        return _client[1]


def close_process_http_client() -> None:
    """Close this process's delivery client (on worker shutdown); the next use makes a new one."""
    global _client
    with _client_lock:
        if _client is not None:
            _client[1].close()
            _client = None


# --- One attempt ----------------------------------------------------------------------------------


def build_payload(job: Job, event: str, event_time: datetime) -> str:
    """The JSON body of an event: `{"type", "timestamp", "data"}` with the job as the API shows it."""
    data = to_out(job)
    if data.webhook is None:  # to_out may leave the webhook fields out
        data = data.model_copy(update={"webhook": job.webhook, "webhook_events": job.webhook_events or []})
    body = {
        "type": EVENT_TYPES[event],
        "timestamp": event_time.isoformat().replace("+00:00", "Z"),
        "data": data.model_dump(mode="json"),
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def deliver(delivery_id: str, settings: Settings, *, http: httpx.Client) -> DeliveryOutcome:
    """Make one attempt of delivery `delivery_id` and record its outcome (see the module docstring).

    Raises ConfigurationError (and changes nothing) when no webhook secret is configured. Each outcome
    counts in `textfleet_webhook_deliveries_total{outcome}`.
    """
    outcome = _deliver(delivery_id, settings, http=http)
    WEBHOOK_DELIVERIES.labels(outcome=outcome.status).inc()
    return outcome


def _deliver(delivery_id: str, settings: Settings, *, http: httpx.Client) -> DeliveryOutcome:
    if settings.webhook_secret is None or not settings.webhook_secret.get_secret_value():
        raise ConfigurationError("TEXTFLEET_WEBHOOK_SECRET is not set: webhook deliveries cannot be signed")
    signer = Webhook(settings.webhook_secret.get_secret_value())
    max_age = timedelta(seconds=settings.webhook_max_age_s)
    with structlog.contextvars.bound_contextvars(delivery_id=delivery_id):
        now = utcnow()
        with session_scope(settings.database_url) as session:
            row = session.get(WebhookDelivery, delivery_id)
            if row is None:
                log.info("webhook.skipped", reason="no such delivery")
                return DeliveryOutcome(delivery_id, "skipped", error="no such delivery")
            if row.status != "pending":
                return DeliveryOutcome(delivery_id, "skipped", attempts=row.attempts, error=row.status)
            deadline = row.created_at + max_age
            if now >= deadline:
                expired = f"expired: not delivered within {settings.webhook_max_age_s:g} s of the event"
                if row.last_error:
                    expired = f"{expired}; last error: {row.last_error}"
                _finish(session, row.id, row.attempts, status="failed", error=expired, attempted=False)
                log.warning("webhook.failed", reason="expired", attempts=row.attempts)
                return DeliveryOutcome(delivery_id, "failed", attempts=row.attempts, error=_clip(expired))
            if row.next_attempt_at is not None and row.next_attempt_at > now + timedelta(
                seconds=EARLY_TOLERANCE_S
            ):
                return DeliveryOutcome(delivery_id, "skipped", attempts=row.attempts, error="not due")
            attempt = row.attempts + 1
            if not _claim(session, row.id, row.attempts, now + timedelta(seconds=lease_s(settings))):
                return DeliveryOutcome(delivery_id, "skipped", attempts=row.attempts, error="claimed")
            job = session.get(Job, row.job_id)
            if job is None:
                gone = f"job {row.job_id} no longer exists"
                _finish(session, row.id, attempt, status="failed", error=gone)
                return DeliveryOutcome(delivery_id, "failed", attempts=attempt, error=gone)
            url, event = row.url, row.event
            body = build_payload(job, event, row.created_at)
        # The claim is committed: no transaction is held during the HTTP call.
        status_code, error, permanent = _post(http, settings, signer, delivery_id, url, body)
        done = utcnow()
        with session_scope(settings.database_url) as session:
            if status_code is not None and 200 <= status_code < 300:
                _finish(session, delivery_id, attempt, status="delivered", code=status_code, at=done)
                log.info("webhook.delivered", webhook_event=event, attempts=attempt, status_code=status_code)
                return DeliveryOutcome(delivery_id, "delivered", attempt, status_code)
            next_at = done + timedelta(seconds=backoff_schedule(attempt))
            if permanent or next_at >= deadline:
                if not permanent:
                    error = f"{error}; gave up after {attempt} attempts ({settings.webhook_max_age_s:g} s)"
                _finish(session, delivery_id, attempt, status="failed", code=status_code, error=error)
                log.warning("webhook.failed", webhook_event=event, attempts=attempt, error=error)
                return DeliveryOutcome(delivery_id, "failed", attempt, status_code, _clip(error))
            if not _finish(
                session, delivery_id, attempt, status="pending", code=status_code, error=error, at=next_at
            ):  # another attempt owns the row now (our lease ran out): it schedules the next one
                return DeliveryOutcome(delivery_id, "skipped", attempt, status_code, "superseded")
            log.info(
                "webhook.retry", webhook_event=event, attempts=attempt, error=error, next_attempt_at=next_at
            )
            return DeliveryOutcome(delivery_id, "retry", attempt, status_code, _clip(error), next_at)


def _post(
    http: httpx.Client, settings: Settings, signer: Webhook, msg_id: str, url: str, body: str
) -> tuple[int | None, str | None, bool]:
    """One POST: `(status code or None, error or None, whether the failure is permanent)`."""
    try:
        request_url, extra_headers, extensions = _destination(url, settings)
    except UnsafeWebhookURLError as exc:
        return None, str(exc), True
    except OSError as exc:  # the name did not resolve: DNS may come back
        return None, f"cannot resolve webhook host: {exc}", False
    sent_at = utcnow()
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signer.sign(msg_id, sent_at, body),
        **extra_headers,
    }
    try:
        with http.stream(
            "POST",
            request_url,
            content=body.encode(),
            headers=headers,
            timeout=settings.webhook_timeout_s,
            follow_redirects=False,
            extensions=extensions,
        ) as response:  # the body is never read: only the status matters
            code = response.status_code
    except httpx.TimeoutException as exc:
        return None, f"timeout after {settings.webhook_timeout_s:g} s ({type(exc).__name__})", False
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}", False
    if 200 <= code < 300:
        return code, None, False
    if 300 <= code < 400:
        return code, f"HTTP {code}: redirects are not followed", False
    return code, f"HTTP {code}", False


def _destination(url: str, settings: Settings) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The URL to request, extra headers and request extensions: with private addresses refused, the
    host is resolved now and the request goes to the checked address (Host header and TLS SNI keep
    the name, and the certificate is verified against it)."""
    scheme, host, port = check_url_scheme(url)
    if settings.webhook_allow_private:
        return url, {}, {}
    address = resolve_public_addresses(host, port)[0]
    if address == host.strip("[]"):
        return url, {}, {}
    parsed = httpx.URL(url)
    extensions: dict[str, Any] = {"sni_hostname": host} if scheme == "https" else {}
    return str(parsed.copy_with(host=address)), {"host": parsed.netloc.decode("ascii")}, extensions


# --- Row updates (conditional: only while the row is pending at the expected attempt) ------------


def _claim(session: Session, delivery_id: str, attempts: int, lease_until: datetime) -> bool:
    result = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == "pending",
            WebhookDelivery.attempts == attempts,
        )
        .values(attempts=attempts + 1, next_attempt_at=lease_until)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _finish(
    session: Session,
    delivery_id: str,
    attempts: int,
    *,
    status: Literal["pending", "delivered", "failed"],
    code: int | None = None,
    error: str | None = None,
    at: datetime | None = None,
    attempted: bool = True,
) -> bool:
    values: dict[str, Any] = {"status": status, "last_error": _clip(error)}
    if attempted:
        values["last_status_code"] = code
    if status == "delivered":
        values["delivered_at"] = at
        values["next_attempt_at"] = None
    elif status == "pending":
        values["next_attempt_at"] = at
    else:
        values["next_attempt_at"] = None
    result = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == "pending",
            WebhookDelivery.attempts == attempts,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    won = bool(result.rowcount)  # type: ignore[attr-defined]
    if not won:
        log.warning("webhook.outcome_ignored", status=status, attempts=attempts)
    return won


def _clip(error: str | None) -> str | None:
    if error is None or len(error) <= _MAX_ERROR:
        return error
    return error[: _MAX_ERROR - 3] + "..."


# --- Celery ---------------------------------------------------------------------------------------


def register_webhook_task(
    celery_app: Celery,
    *,
    settings: Callable[[], Settings] = get_settings,
    http: Callable[[Settings], httpx.Client] = process_http_client,
) -> Any:
    """Register `WEBHOOK_TASK(delivery_id)` on `celery_app` (acks_late) and return it.

    Each run makes one attempt; when another is due it re-sends itself to the `webhooks` queue with a
    `countdown`. If that send is lost, the sweeper re-sends the delivery (`shared.webhooks.due_deliveries`).
    """

    def run(delivery_id: str) -> str:
        current = settings()
        outcome = deliver(delivery_id, current, http=http(current))
        delay = outcome.retry_in
        if delay is not None:
            try:
                celery_app.tasks[WEBHOOK_TASK].apply_async(
                    args=[delivery_id], countdown=delay, queue=Queue.WEBHOOKS.value
                )
            except Exception as exc:  # the broker is down: the sweeper re-sends the delivery later
                log.warning("webhook.retry_not_enqueued", delivery_id=delivery_id, error=str(exc))
        return outcome.status

    # shared=False: registered on this app only (a shared task would be added to every app finalized
    # later in the process, under the same name).
    return celery_app.task(run, name=WEBHOOK_TASK, acks_late=True, ignore_result=True, shared=False)
