"""The webhook worker's database path, batched: one read of the pulled deliveries, one claim of those
about to be sent (with their jobs), one write of many outcomes.

Every write is conditional, as for one delivery: a claim takes a row only while it is `pending` and
due (it moves `next_attempt_at` to the end of the lease, so a second claimer finds it not due), and an
outcome lands only while the row is `pending` at the attempt that was claimed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from shared.db import session_scope
from shared.db.models import Job, WebhookDelivery, utcnow
from workers.webhooks.http import build_payload, clip

__all__ = ["Claimed", "Outcome", "Pending", "claim", "read", "write_outcomes"]


@dataclass(frozen=True)
class Pending:
    """A delivery row as read before its attempt."""

    id: str
    job_id: str
    event: str
    url: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    last_error: str | None
    resent_at: datetime | None = None

    @property
    def window_start(self) -> datetime:
        """Where its max age counts from: the event, or the operator's last re-send."""
        return self.resent_at or self.created_at


@dataclass(frozen=True)
class Claimed:
    """A claimed attempt, ready to send (`body` is None when the job no longer exists)."""

    row: Pending
    attempt: int
    body: bytes | None


@dataclass(frozen=True)
class Outcome:
    """What to write for one delivery."""

    id: str
    attempt: int  # the attempt the row must be at (its `attempts`)
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
            ).where(WebhookDelivery.id.in_(ids))
        ).all()
    return {r.id: Pending(**r._asdict()) for r in rows}


def claim(database_url: str, rows: list[Pending], due_by: datetime, lease_s: float) -> list[Claimed]:
    """Claim the attempts of `rows` (those still pending and due by `due_by`) and build their bodies."""
    if not rows:
        return []
    by_id = {r.id: r for r in rows}
    lease_until = utcnow() + timedelta(seconds=lease_s)
    with session_scope(database_url) as session:
        won = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id.in_(list(by_id)),
                WebhookDelivery.status == "pending",
                (WebhookDelivery.next_attempt_at.is_(None)) | (WebhookDelivery.next_attempt_at <= due_by),
            )
            .values(attempts=WebhookDelivery.attempts + 1, next_attempt_at=lease_until)
            .returning(WebhookDelivery.id, WebhookDelivery.attempts)
            .execution_options(synchronize_session=False)
        ).all()
        jobs = _jobs(session, {by_id[r.id].job_id for r in won})
        claimed = []
        for delivery_id, attempt in won:
            row = by_id[delivery_id]
            job = jobs.get(row.job_id)
            body = build_payload(job, row.event, row.created_at).encode() if job is not None else None
            claimed.append(Claimed(row, int(attempt), body))
    return claimed


def _jobs(session: Session, ids: set[str]) -> dict[str, Job]:
    if not ids:
        return {}
    return {job.id: job for job in session.scalars(select(Job).where(Job.id.in_(list(ids))))}


_TABLE = cast(Table, WebhookDelivery.__table__)
_COLUMNS = _TABLE.c


def write_outcomes(database_url: str, outcomes: list[Outcome]) -> None:
    """Write many outcomes in one transaction (one executemany per kind)."""
    groups: dict[tuple[str, bool], list[dict[str, Any]]] = {}
    for o in outcomes:
        params = {"b_id": o.id, "b_attempt": o.attempt, "b_code": o.status_code, "b_error": clip(o.error)}
        params["b_at"] = o.at
        groups.setdefault((o.status, o.attempted), []).append(params)
    with session_scope(database_url) as session:
        for (status, attempted), rows in groups.items():
            values: dict[str, Any] = {"status": status, "last_error": bindparam("b_error")}
            if attempted:
                values["last_status_code"] = bindparam("b_code")
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
                    _COLUMNS.attempts == bindparam("b_attempt"),
                )
                .values(**values)
            )
            session.execute(statement, rows)
