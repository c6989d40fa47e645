"""The delivery rows of webhook events: one per (job, event) or (batch, event), recorded in the
transaction of the state change that causes it, and the reads of them (the API's delivery state, the
sweeper's overdue).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from ulid import ULID

from shared.db.models import WebhookDelivery, utcnow
from shared.schemas import WebhookDeliveryOut

__all__ = [
    "BATCH_EVENT_TYPES",
    "DEFAULT_EVENTS",
    "EVENT_TYPES",
    "WEBHOOK_EVENTS",
    "WebhookSubject",
    "deliveries_for",
    "delivery_out",
    "due_deliveries",
    "new_delivery_id",
    "record_batch_event",
    "record_event",
    "subscribed_events",
]

#: The events a job can send.
WEBHOOK_EVENTS: tuple[str, ...] = ("started", "completed")
#: Events of a job that has a webhook but no `webhook_events` (as `JobCreate.events`).
DEFAULT_EVENTS: tuple[str, ...] = ("completed",)
#: The `type` of the payload of each event.
EVENT_TYPES: dict[str, str] = {"started": "job.started", "completed": "job.completed"}
#: A batch sends one event, when it ends: its row's `event` is the final status, the payload's `type`
#: is OpenAI's name of the webhook event for it.
BATCH_EVENT_TYPES: dict[str, str] = {
    "completed": "batch.completed",
    "expired": "batch.expired",
    "cancelled": "batch.cancelled",
    "failed": "batch.failed",
}


class WebhookSubject(Protocol):
    """What `record_event` reads of a job: a `Job` row, or a row of `RETURNING id, webhook, ...`."""

    @property
    def id(self) -> str: ...

    @property
    def webhook(self) -> str | None: ...

    @property
    def webhook_events(self) -> list[str] | None: ...


def new_delivery_id() -> str:
    """A new delivery id, `msg_` + ULID: the `webhook-id` header of every attempt of one event."""
    return f"msg_{ULID()}"


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
    -> `completed`) and enqueue the returned row's id (`queue.enqueue_deliveries`) after the commit.

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
    return _insert(session, {"job_id": job.id, "event": event, "url": url}, ["job_id", "event"])


def record_batch_event(
    session: Session, batch_id: str, webhook: str | None, status: str
) -> WebhookDelivery | None:
    """Insert the delivery row of a batch that ended in `status` (a key of `BATCH_EVENT_TYPES`), in
    the caller's transaction (the one that moves its status); None without a webhook or when the row
    exists. Enqueue the returned row's id after the commit, as `record_event`'s."""
    if status not in BATCH_EVENT_TYPES:
        raise ValueError(f"no webhook event for a batch that is {status!r}")
    if not webhook:
        return None
    exists = session.scalar(
        select(WebhookDelivery.id).where(
            WebhookDelivery.batch_id == batch_id, WebhookDelivery.event == status
        )
    )
    if exists is not None:
        return None
    values = {"batch_id": batch_id, "event": status, "url": webhook}
    return _insert(session, values, ["batch_id", "event"])


def _insert(session: Session, subject: dict[str, Any], unique: list[str]) -> WebhookDelivery | None:
    """A pending delivery row, due now; None when the `unique` columns' row exists (a concurrent
    insert is absorbed by `ON CONFLICT DO NOTHING`, or a savepoint elsewhere)."""
    now = utcnow()
    values: dict[str, Any] = {
        "id": new_delivery_id(),
        **subject,
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
            .on_conflict_do_nothing(index_elements=unique)
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
            if row.job_id is not None:
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
