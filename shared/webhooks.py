"""Webhook events of jobs (Standard Webhooks, https://www.standardwebhooks.com): the delivery rows,
how they are enqueued, the retry schedule, and which destination addresses are allowed.

Used by the API (to show delivery state), by the workers (to record events in the same transaction as
a job's state change) and by the sweeper (to re-send deliveries whose message was lost). The HTTP side
lives in `workers.webhooks`.

Life of a delivery: one row per (job, event), created `pending` with `next_attempt_at = now` in the
transaction that changes the job's state, made due in Redis (`enqueue_deliveries`, the due set of
`shared.webhook_queue`) after that transaction commits. Each attempt updates the row; a 2xx ends it
`delivered`, a refused destination or the end of `webhook_max_age_s` ends it `failed`. The row is the
truth: after a Redis loss the due set is rebuilt from the pending rows, and the sweeper re-sends a
pending delivery that is overdue only when it is in neither Redis set (`due_deliveries` +
`webhook_queue.missing`): its enqueue was lost.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import redis
import structlog
from celery import Celery
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from ulid import ULID

from shared import webhook_queue
from shared.db import session_scope
from shared.db.models import WebhookDelivery, utcnow
from shared.errors import QueueUnavailableError
from shared.schemas import WebhookDeliveryOut

__all__ = [
    "BACKOFF_JITTER",
    "BACKOFF_SCHEDULE_S",
    "DEFAULT_EVENTS",
    "EVENT_TYPES",
    "USER_AGENT",
    "WEBHOOK_EVENTS",
    "UnsafeWebhookURLError",
    "WebhookSubject",
    "backoff_schedule",
    "check_url_scheme",
    "deliveries_for",
    "delivery_out",
    "due_deliveries",
    "enqueue_deliveries",
    "is_public_address",
    "new_delivery_id",
    "record_event",
    "resend_lost",
    "resolve_public_addresses",
    "retry_delay",
]

log = structlog.get_logger(__name__)

#: The events a job can send.
WEBHOOK_EVENTS: tuple[str, ...] = ("started", "completed")
#: Events of a job that has a webhook but no `webhook_events` (as `JobCreate.events`).
DEFAULT_EVENTS: tuple[str, ...] = ("completed",)
#: The `type` of the payload of each event.
EVENT_TYPES: dict[str, str] = {"started": "job.started", "completed": "job.completed"}
#: The User-Agent of every delivery.
USER_AGENT = "textfleet-webhooks/0.1"

#: Delay after the n-th failed attempt (n = 1, 2, ...): 5 s, 30 s, 2 min, 10 min, 30 min, then every
#: 50 min until `webhook_max_age_s` after the event. The ceiling stays below the broker's visibility
#: timeout (1 h, `shared.queueing.VISIBILITY_TIMEOUT_S`): a Redis message held back (Celery `countdown`)
#: longer than that would be handed out twice. With the default 24 h: about 33 attempts.
BACKOFF_SCHEDULE_S: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0, 1800.0, 3000.0)


class WebhookSubject(Protocol):
    """What `record_event` reads of a job: a `Job` row, or a row of `RETURNING id, webhook, ...`."""

    @property
    def id(self) -> str: ...

    @property
    def webhook(self) -> str | None: ...

    @property
    def webhook_events(self) -> list[str] | None: ...


class UnsafeWebhookURLError(ValueError):
    """A webhook URL that must not be called (bad scheme, or a private/loopback/... address)."""


def new_delivery_id() -> str:
    """A new delivery id, `msg_` + ULID: the `webhook-id` header of every attempt of one event."""
    return f"msg_{ULID()}"


def backoff_schedule(attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based) before the next one."""
    if attempt < 1:
        return 0.0
    return BACKOFF_SCHEDULE_S[min(attempt, len(BACKOFF_SCHEDULE_S)) - 1]


#: Retry delays are drawn from [(1 - BACKOFF_JITTER) x, x] of the schedule, so the retries of many
#: deliveries that failed together (an endpoint that was down) do not all come back at once.
BACKOFF_JITTER = 0.2


def retry_delay(attempt: int, rng: random.Random | None = None) -> float:
    """`backoff_schedule(attempt)` with jitter: the delay after failed attempt `attempt`."""
    base = backoff_schedule(attempt)
    return base * (1.0 - BACKOFF_JITTER * (rng or random).random())


# --- Recording events ---------------------------------------------------------------------------


def subscribed_events(job: WebhookSubject) -> tuple[str, ...]:
    """The events `job` sends: none without a webhook; `completed` when it names none."""
    if not job.webhook:
        return ()
    if job.webhook_events is None:
        return DEFAULT_EVENTS
    return tuple(e for e in WEBHOOK_EVENTS if e in job.webhook_events)


def record_event(session: Session, job: WebhookSubject, event: str) -> WebhookDelivery | None:
    """Insert the delivery row of `job`'s `event`, in the caller's transaction, when the job subscribes
    to it. Call it in the same transaction as the state change (claim -> `started`; any terminal state
    -> `completed`) and enqueue the returned row's id (`enqueue_deliveries`) after the commit.

    Idempotent per (job, event): returns None when the job does not send `event`, or when its row
    already exists (checked first; a concurrent insert is absorbed by the unique constraint with
    `ON CONFLICT DO NOTHING`, so the caller's transaction is never aborted).
    """
    if event not in WEBHOOK_EVENTS:
        raise ValueError(f"unknown webhook event {event!r}; expected one of {', '.join(WEBHOOK_EVENTS)}")
    if event not in subscribed_events(job):
        return None
    url = job.webhook
    assert url is not None  # subscribed_events is empty without one
    exists = session.scalar(
        select(WebhookDelivery.id).where(WebhookDelivery.job_id == job.id, WebhookDelivery.event == event)
    )
    if exists is not None:
        return None
    now = utcnow()
    values: dict[str, Any] = {
        "id": new_delivery_id(),
        "job_id": job.id,
        "event": event,
        "url": url,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    dialect = session.get_bind().dialect.name
    if dialect in {"postgresql", "sqlite"}:
        factory = pg_insert if dialect == "postgresql" else sqlite_insert
        statement = (
            factory(WebhookDelivery)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["job_id", "event"])
            .returning(WebhookDelivery)
        )
        return session.scalars(statement).first()
    try:  # other databases: a savepoint keeps the caller's transaction usable after a conflict
        with session.begin_nested():
            row = WebhookDelivery(**values)
            session.add(row)
    except IntegrityError:
        return None
    return row


# --- Enqueuing ----------------------------------------------------------------------------------


def enqueue_deliveries(
    broker: Celery | redis.Redis, delivery_ids: Sequence[str], countdown: float | None = None
) -> None:
    """Make deliveries due (now, or `countdown` seconds from now) in the webhook due set of the
    broker's Redis (`shared.webhook_queue`; `broker`: the Celery app, or a client of its Redis), in one
    write. An id already due only moves: a delivery is never queued twice. Raises
    QueueUnavailableError if Redis refuses.
    """
    if not delivery_ids:
        return
    from shared.queueing import redis_client

    at = time.time() + countdown if countdown else None
    client = broker if isinstance(broker, redis.Redis) else redis_client(str(broker.conf.broker_url))
    try:
        webhook_queue.enqueue(client, delivery_ids, at)
    except Exception:  # e.g. a pooled connection Redis dropped: redis-py reconnects on the next use
        try:
            webhook_queue.enqueue(client, delivery_ids, at)
        except Exception as exc:
            raise QueueUnavailableError(f"could not enqueue webhook deliveries: {exc}") from exc


# --- Reading ------------------------------------------------------------------------------------


def delivery_out(row: WebhookDelivery) -> WebhookDeliveryOut:
    """The client-facing view of a delivery row."""
    return WebhookDeliveryOut(
        id=row.id,
        event=row.event,
        status=row.status,  # pending | delivered | failed
        attempts=row.attempts,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
        delivered_at=row.delivered_at,
    )


#: Job ids per `IN (...)` list: one query for any page of the API; very large lists take several.
_IN_CHUNK = 1000


def deliveries_for(session: Session, job_ids: Iterable[str]) -> dict[str, list[WebhookDeliveryOut]]:
    """The deliveries of each job (every given id is a key; `started` before `completed`)."""
    ids = list(dict.fromkeys(job_ids))
    out: dict[str, list[WebhookDeliveryOut]] = defaultdict(list)
    for start in range(0, len(ids), _IN_CHUNK):
        rows = session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.job_id.in_(ids[start : start + _IN_CHUNK]))
            .order_by(WebhookDelivery.job_id, WebhookDelivery.created_at, WebhookDelivery.id)
        )
        for row in rows:
            out[row.job_id].append(delivery_out(row))
    return {job_id: out.get(job_id, []) for job_id in ids}


def due_deliveries(session: Session, now: datetime, grace_s: float, *, limit: int = 1000) -> list[str]:
    """Ids of pending deliveries overdue by more than `grace_s` (their message was likely lost, or
    their worker died mid-attempt): the sweeper enqueues them again. Oldest first."""
    cutoff = now - timedelta(seconds=grace_s)
    return list(
        session.scalars(
            select(WebhookDelivery.id)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at < cutoff)
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
        )
    )


def resend_lost(client: redis.Redis, database_url: str, now: datetime, grace_s: float) -> int:
    """Make due again the pending deliveries overdue by more than `grace_s` that are in neither Redis
    set: their enqueue was lost (a crash or a Redis error right after the commit). One waiting behind
    a backlog is still in the due (or leased) set and is never re-sent. How many were re-sent."""
    with session_scope(database_url) as session:
        overdue = due_deliveries(session, now, grace_s)
    unqueued = webhook_queue.missing(client, overdue)
    if unqueued:  # read again: one delivered (and settled) since the first read is not lost
        with session_scope(database_url) as session:
            unqueued = list(
                session.scalars(
                    select(WebhookDelivery.id).where(
                        WebhookDelivery.id.in_(unqueued), WebhookDelivery.status == "pending"
                    )
                )
            )
        enqueue_deliveries(client, unqueued)
    return len(unqueued)


# --- Destinations -------------------------------------------------------------------------------


def check_url_scheme(url: str) -> tuple[str, str, int]:
    """`(scheme, host, port)` of an http(s) URL; UnsafeWebhookURLError for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeWebhookURLError(f"invalid webhook URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"}:
        raise UnsafeWebhookURLError(f"webhook URL scheme must be http or https, not {scheme or 'none'!r}")
    if not parts.hostname:
        raise UnsafeWebhookURLError("webhook URL has no host")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80)


def is_public_address(address: str) -> bool:
    """Whether an IP address is a globally routable unicast one (not private, loopback, link-local,
    reserved, shared, multicast or unspecified; IPv4-mapped IPv6 is judged as its IPv4 address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


def resolve_public_addresses(host: str, port: int) -> list[str]:
    """Resolve `host` now (socket.getaddrinfo) and return its addresses if every one is public.

    Raises UnsafeWebhookURLError when any address is not public (a name that resolves to both is
    refused too), and OSError (socket.gaierror) when the name does not resolve.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise OSError(f"{host} has no address")
    refused = [a for a in addresses if not is_public_address(a)]
    if refused:
        raise UnsafeWebhookURLError(
            f"webhook host {host} resolves to a non-public address ({', '.join(refused)}); "
            "private, loopback, link-local and reserved addresses are refused "
            "(TEXTFLEET_WEBHOOK_ALLOW_PRIVATE=true allows them)"
        )
    return addresses
