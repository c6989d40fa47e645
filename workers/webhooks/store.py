"""The webhook worker's database path, batched: one read of the pulled deliveries, one read of the jobs
(and batches) of those about to be sent (for their bodies), one write of many outcomes.

There is no claim write: the Redis lease already gives a delivery to one worker at a time, so an
attempt costs one row update, its outcome. That update is conditional (the row still `pending` at the
attempt count read before the attempt, and it counts the attempt), so if two workers ever sent one
delivery at once (possible only after a Redis restart, when the due set is rebuilt from the database
while attempts are in flight) only one outcome counts; receivers deduplicate on `webhook-id`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from shared import batches
from shared.batch_objects import BatchOut, RequestCounts, batch_out
from shared.db import session_scope
from shared.db.batch_models import Batch
from shared.db.models import Job, WebhookDelivery
from shared.webhooks.tenant_secrets import tenant_webhook_secrets
from workers.webhooks.http import build_batch_payload, build_payload, clip

__all__ = ["Claimed", "Outcome", "Pending", "prepare", "read", "write_outcomes"]


@dataclass(frozen=True)
class Pending:
    """A delivery row as read before its attempt."""

    id: str
    job_id: str | None
    event: str
    url: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    last_error: str | None
    resent_at: datetime | None = None
    batch_id: str | None = None

    @property
    def subject(self) -> str:
        """What the event is about, in words: `job <id>` or `batch <id>`."""
        return f"job {self.job_id}" if self.job_id is not None else f"batch {self.batch_id}"

    @property
    def window_start(self) -> datetime:
        """Where its max age counts from: the event, or the operator's last re-send."""
        return self.resent_at or self.created_at


@dataclass(frozen=True)
class Claimed:
    """An attempt ready to send (`body` is None when its job or batch no longer exists)."""

    row: Pending
    attempt: int
    body: bytes | None
    secret: str | None = None  # its tenant's own signing secret (None: the global one)


@dataclass(frozen=True)
class Outcome:
    """What to write for one delivery."""

    id: str
    attempt: int  # the attempt made (the row's `attempts` after it), or its `attempts` if none was
    status: Literal["delivered", "pending", "failed"]
    status_code: int | None = None
    error: str | None = None
    at: datetime | None = None  # delivered_at, or the next attempt
    attempted: bool = True  # False: the row's last status code stays


def read(database_url: str, ids: list[str]) -> dict[str, Pending]:
    """The rows of `ids` that exist."""
    with session_scope(database_url) as session:
        rows = session.execute(
            select(
                WebhookDelivery.id,
                WebhookDelivery.job_id,
                WebhookDelivery.event,
                WebhookDelivery.url,
                WebhookDelivery.status,
                WebhookDelivery.attempts,
                WebhookDelivery.next_attempt_at,
                WebhookDelivery.created_at,
                WebhookDelivery.last_error,
                WebhookDelivery.resent_at,
                WebhookDelivery.batch_id,
            ).where(WebhookDelivery.id.in_(ids))
        ).all()
    return {r.id: Pending(**r._asdict()) for r in rows}


def prepare(database_url: str, rows: list[Pending]) -> list[Claimed]:
    """The attempts of `rows`, with their bodies (their jobs read in one query; their batches, with
    their request counts, one query each) and their tenants' own signing secrets (one query)."""
    if not rows:
        return []
    with session_scope(database_url) as session:
        jobs = _jobs(session, {r.job_id for r in rows if r.job_id is not None})
        batch_objects = _batches(session, {r.batch_id for r in rows if r.batch_id is not None})
        prepared: list[tuple[Pending, str | None, str | None]] = []  # row, body, tenant
        for row in rows:
            body: str | None = None
            tenant: str | None = None
            if row.job_id is not None:
                job = jobs.get(row.job_id)
                if job is not None:
                    body, tenant = build_payload(job, row.event, row.created_at), job.tenant_id
            elif row.batch_id is not None:
                found = batch_objects.get(row.batch_id)
                if found is not None:
                    body, tenant = build_batch_payload(found[0], row.event, row.created_at), found[1]
            prepared.append((row, body, tenant))
        own = tenant_webhook_secrets(session, {t for _, _, t in prepared if t is not None})
    return [
        Claimed(row, row.attempts + 1, body.encode() if body is not None else None, own.get(tenant or ""))
        for row, body, tenant in prepared
    ]


def _jobs(session: Session, ids: set[str]) -> dict[str, Job]:
    if not ids:
        return {}
    return {job.id: job for job in session.scalars(select(Job).where(Job.id.in_(list(ids))))}


def _batches(session: Session, ids: set[str]) -> dict[str, tuple[BatchOut, str]]:
    """The batch objects of `ids` as the API shows them now (with their request counts), and their
    tenants."""
    if not ids:
        return {}
    out = {}
    for batch in session.scalars(select(Batch).where(Batch.id.in_(list(ids)))).all():
        counts = RequestCounts(**batches.counts(session, batch)._asdict())
        out[batch.id] = (batch_out(batch, counts), batch.tenant_id)
    return out


_TABLE = cast(Table, WebhookDelivery.__table__)
_COLUMNS = _TABLE.c


def write_outcomes(database_url: str, outcomes: list[Outcome]) -> None:
    """Write many outcomes in one transaction (one executemany per kind)."""
    groups: dict[tuple[str, bool], list[dict[str, Any]]] = {}
    for o in outcomes:
        params = {"b_id": o.id, "b_attempt": o.attempt, "b_code": o.status_code, "b_error": clip(o.error)}
        params["b_at"] = o.at
        params["b_before"] = o.attempt - 1 if o.attempted else o.attempt
        groups.setdefault((o.status, o.attempted), []).append(params)
    with session_scope(database_url) as session:
        for (status, attempted), rows in groups.items():
            values: dict[str, Any] = {"status": status, "last_error": bindparam("b_error")}
            if attempted:
                values["last_status_code"] = bindparam("b_code")
                values["attempts"] = bindparam("b_attempt")
            if status == "delivered":
                values["delivered_at"] = bindparam("b_at")
                values["next_attempt_at"] = None
            elif status == "pending":
                values["next_attempt_at"] = bindparam("b_at")
            else:
                values["next_attempt_at"] = None
            statement = (
                update(_TABLE)
                .where(
                    _COLUMNS.id == bindparam("b_id"),
                    _COLUMNS.status == "pending",
                    _COLUMNS.attempts == bindparam("b_before"),
                )
                .values(**values)
            )
            session.execute(statement, rows)
