"""A batch's life after creation, written once for the API (on every read) and the sweeper (in the
background): request counts from the jobs, and the status transitions.

A batch's status moves forward only, each move a conditional UPDATE on the status it had (`move`), so
concurrent readers and sweepers move it once: `in_progress` -> `completed` once every request is
done; `in_progress` -> `expired` once its window has passed (its queued jobs canceled, what finished
kept); `in_progress` -> `cancelling` (a client's cancel; queued jobs canceled) -> `cancelled` once no
job runs any more. Validation failures are `failed` from the start (set at creation).

A batch with a `webhook` sends one event when it ends (`batch.completed`, `batch.expired`,
`batch.cancelled`): its delivery row is written in the transaction of the move that ends it, so the
event exists if and only if the final status does, and made due in the webhook queue after the commit
(the webhook worker builds the payload, the batch object, when it sends it).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import redis
import structlog
from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from shared.db import repository
from shared.db.batch_models import Batch, BatchRequest
from shared.db.models import Job, utcnow
from shared.lifecycle import Completion, end_jobs
from shared.logging import safe_message
from shared.results import TERMINAL_STATUSES, JobStatus
from shared.webhooks.queue import enqueue_deliveries
from shared.webhooks.records import BATCH_EVENT_TYPES, record_batch_event

__all__ = [
    "ACTIVE_STATUSES",
    "FINAL_STATUSES",
    "Counts",
    "advance",
    "advance_active",
    "cancel_queued",
    "counts",
    "move",
]

log = structlog.get_logger(__name__)

#: Statuses after which nothing changes any more.
FINAL_STATUSES = frozenset({"failed", "completed", "expired", "cancelled"})
#: Statuses a batch is moved on from by `advance`.
ACTIVE_STATUSES = ("in_progress", "cancelling")
_TERMINAL = [status.value for status in TERMINAL_STATUSES]
#: Queued jobs canceled per transaction (and announced per Redis round trip).
_CANCEL_CHUNK = 1_000


class Counts(NamedTuple):
    """OpenAI's `request_counts`."""

    total: int
    completed: int
    failed: int

    @property
    def finished(self) -> bool:
        return self.completed + self.failed >= self.total


def counts(session: Session, batch: Batch) -> Counts:
    """The batch's request counts from its jobs, in one SQL aggregate: a request (its jobs share its
    input line) is done when all its jobs are terminal; completed when all succeeded, else failed."""
    terminal = func.min(case((Job.status.in_(_TERMINAL), 1), else_=0))
    succeeded = func.min(case((Job.status == JobStatus.SUCCEEDED.value, 1), else_=0))
    per_request = (
        select(terminal.label("done"), succeeded.label("ok"))
        .select_from(BatchRequest)
        .join(Job, Job.id == BatchRequest.job_id)
        .where(BatchRequest.batch_id == batch.id)
        .group_by(BatchRequest.line)
        .subquery()
    )
    done, ok = session.execute(select(func.sum(per_request.c.done), func.sum(per_request.c.ok))).one()
    completed = int(ok or 0)
    return Counts(total=batch.total, completed=completed, failed=int(done or 0) - completed)


def move(
    session: Session,
    batch: Batch,
    expected: str,
    status: str,
    *,
    client: redis.Redis | None = None,
    **times: datetime,
) -> bool:
    """The one status transition: `expected` -> `status` if the batch is still `expected` (committed;
    `batch` refreshed). False if another reader or sweeper moved it first. A move to a final status
    records the batch's webhook event in the same transaction, enqueued after the commit on `client`
    (the broker's Redis; without one, or if Redis refuses, the sweeper re-sends it)."""
    moved = session.execute(
        update(Batch)
        .where(Batch.id == batch.id, Batch.status == expected)
        .values(status=status, **times)
        .execution_options(synchronize_session=False)
    )
    won = bool(moved.rowcount)  # type: ignore[attr-defined]
    delivery = None
    if won and status in BATCH_EVENT_TYPES:
        delivery = record_batch_event(session, batch.id, batch.webhook, status)
    session.commit()
    session.refresh(batch)
    if won:
        log.info("batch.status", batch_id=batch.id, status=status, was=expected)
    if delivery is not None and client is not None:
        try:
            enqueue_deliveries(client, [delivery.id])
        except Exception as exc:  # the sweeper re-sends deliveries that are overdue and unqueued
            log.warning("webhook.enqueue_failed", batch_id=batch.id, error=safe_message(exc))
    return won


def advance(session: Session, batch: Batch, client: redis.Redis, current: Counts | None = None) -> Counts:
    """Move the batch on to where its jobs (and the clock) are; its counts."""
    current = current or counts(session, batch)
    now = utcnow()
    if batch.status == "in_progress" and current.finished:
        move(session, batch, "in_progress", "completed", client=client, finalizing_at=now, completed_at=now)
    elif batch.status == "in_progress" and now >= batch.expires_at:
        if move(session, batch, "in_progress", "expired", client=client, expired_at=now):
            cancel_queued(session, batch, client)
            current = counts(session, batch)
    elif batch.status == "cancelling" and current.finished:
        move(session, batch, "cancelling", "cancelled", client=client, cancelled_at=now)
    return current


def cancel_queued(session: Session, batch: Batch, client: redis.Redis) -> int:
    """Cancel every queued job of the batch through the one path to a terminal state
    (`shared.lifecycle.end_jobs`: a conditional write, so a job a worker claimed meanwhile runs to its
    end; then announced, and gone from the outstanding set). Commits what `session` holds first.
    How many were canceled."""
    session.commit()
    queued = session.scalars(
        select(Job.id)
        .select_from(BatchRequest)
        .join(Job, Job.id == BatchRequest.job_id)
        .where(BatchRequest.batch_id == batch.id, Job.status == JobStatus.QUEUED.value)
    ).all()
    session.rollback()  # end the read transaction: end_jobs runs its own
    canceled = 0
    for start in range(0, len(queued), _CANCEL_CHUNK):
        chunk = [
            Completion(
                job_id, JobStatus.CANCELED, error=repository.CANCELED_ERROR, expected=(JobStatus.QUEUED,)
            )
            for job_id in queued[start : start + _CANCEL_CHUNK]
        ]
        canceled += sum(ended is not None for ended in end_jobs(session, client, chunk))
    log.info("batch.jobs_canceled", batch_id=batch.id, jobs=canceled)
    return canceled


def advance_active(session: Session, client: redis.Redis, *, limit: int = 1000) -> int:
    """`advance` every batch still running (the sweeper's part: batches complete, expire and finish
    cancelling with nobody reading them). How many changed status."""
    active = session.scalars(
        select(Batch).where(Batch.status.in_(ACTIVE_STATUSES)).order_by(Batch.id).limit(limit)
    ).all()
    session.rollback()
    moved = 0
    for batch in active:
        before = batch.status
        advance(session, batch, client)
        moved += batch.status != before
    return moved
