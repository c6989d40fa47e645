"""The jobs table: every INSERT, UPDATE and DELETE of it lives here (a test holds it to that), and
the reads the API and the sweeper need.

State changes are conditional updates (`UPDATE ... WHERE status = <expected>`), so two workers can
never both claim a job, and a job's first terminal state is its only one. The state machine:

    (insert) -> queued --claim--> running --finish--> succeeded | failed | canceled | expired
                  ^                  |
                  +-----requeue------+         queued --finish--> canceled | expired

Terminal states are written through `shared.lifecycle.end_jobs` (which also records the webhook
event and announces the end); the worker's store batches claims and completions over these functions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Table, delete, func, insert, select, update
from sqlalchemy.orm import Session
from ulid import ULID

from shared.constants import DEFAULT_TENANT, TaskName
from shared.db.job_views import row_to_out, to_out
from shared.db.models import Job, utcnow
from shared.schemas import TERMINAL_STATUSES, JobStatus

__all__ = [
    "CANCELED_ERROR",
    "ERASED_MESSAGE",
    "TERMINAL_VALUES",
    "AnyRow",
    "claim",
    "claim_many",
    "delete_jobs",
    "erase",
    "expired_error",
    "finish",
    "get",
    "insert_job_rows",
    "new_job_id",
    "new_job_row",
    "purge_queued",
    "requeue",
    "row_to_out",
    "succeed_unrun",
    "take_stale_queued",
    "to_out",
    "ttl_passed",
]


#: A row of a `RETURNING` or column `SELECT` (its columns are attributes: `row.id`, `row.task`, ...).
AnyRow = Row[*tuple[Any, ...]]


def new_job_id() -> str:
    """A new sortable job id (ULID, 26 characters)."""
    return str(ULID())


def new_job_row(
    *,
    task: str,
    input_: dict[str, Any],
    params: dict[str, Any],
    metadata: dict[str, Any],
    priority: int,
    created_at: datetime,
    job_id: str | None = None,
    webhook: str | None = None,
    webhook_events: list[str] | None = None,
    tenant: str = DEFAULT_TENANT,
) -> dict[str, Any]:
    """The values of a `queued` job of `tenant` as a plain dict keyed by `Job` attribute (for
    `insert_job_rows`)."""
    return {
        "id": job_id or new_job_id(),
        "tenant_id": tenant,
        "task": task,
        "status": JobStatus.QUEUED.value,
        "input": input_,
        "params": params,
        "meta": metadata,
        "priority": priority,
        "attempts": 0,
        "created_at": created_at,
        "enqueued_at": created_at,
        "webhook": webhook,
        "webhook_events": webhook_events,
    }


def insert_job_rows(session: Session, rows: Sequence[dict[str, Any]], *, chunk_size: int = 1000) -> None:
    """INSERT rows made by `new_job_row`: one multi-row statement (one round trip) per `chunk_size`
    rows, without building ORM objects. Written on the session's commit."""
    statement = insert(Job)
    for start in range(0, len(rows), chunk_size):
        session.execute(statement, list(rows[start : start + chunk_size]))


def get(session: Session, job_id: str, *, tenant: str | None = None) -> Job | None:
    """The job with `job_id`, or None; with `tenant`, None as well for another tenant's job (the same
    one primary-key read either way, so the two cannot be told apart, not even by time)."""
    job = session.get(Job, job_id)
    if job is None or (tenant is not None and job.tenant_id != tenant):
        return None
    return job


#: What a transition returns of the row it changed: what announcing it and its webhook event need.
_CHANGED = (Job.id, Job.task, Job.webhook, Job.webhook_events)
#: What `finish` returns for usage accounting (`shared.usage.JobUsage.from_row`).
_ACCOUNTED = (
    Job.tenant_id,
    Job.status,
    Job.started_at,
    Job.finished_at,
    Job.prompt_tokens,
    Job.completion_tokens,
    Job.classified_texts,
)
#: The error of a job canceled by its client.
CANCELED_ERROR: dict[str, Any] = {"code": "canceled", "message": "canceled by request"}


#: The jobs table, for the Core statements of a worker's batches (`claim_many`, `finish_many`).
_JOBS: Table = Job.__table__  # type: ignore[assignment]


def _columns(*attributes: Any) -> list[Any]:
    """The table columns of mapped attributes (for a Core statement's RETURNING)."""
    return [attribute.expression for attribute in attributes]


def ttl_passed(params: dict[str, Any], created_at: datetime, now: datetime) -> float | None:
    """The expiry rule: a job whose `params.ttl_s` passed before it started never runs. Its TTL when it
    has passed (the job must end `expired`), else None."""
    ttl = params.get("ttl_s")
    if ttl is not None and created_at + timedelta(seconds=float(ttl)) < now:
        return float(ttl)
    return None


def expired_error(ttl_s: float) -> dict[str, Any]:
    """The error of a job that expired (`ttl_passed`)."""
    return {"code": "expired", "message": f"not started within ttl_s={ttl_s}"}


# --- Transitions (each a conditional UPDATE of one row unless said otherwise) --------------------


def claim(session: Session, job_id: str, worker: str, *, now: datetime | None = None) -> AnyRow | None:
    """`queued` -> `running` for `worker`. The claimed row (id, task, input, params, attempts,
    created_at, priority, webhook, webhook_events), or None if the job was not queued (someone else
    has it, or it was canceled/expired/finished meanwhile)."""
    return claim_many(session, [job_id], worker, now=now).get(job_id)


def claim_many(
    session: Session, job_ids: list[str], worker: str, *, now: datetime | None = None
) -> dict[str, AnyRow]:
    """`claim` for a group of jobs in one statement (a worker's claim batch): the claimed rows by job
    id; a job that was not queued is absent."""
    jobs = _JOBS.c  # Core, not an ORM-enabled UPDATE: the ORM's bulk path only costs time here
    rows = session.execute(
        update(_JOBS)
        .where(jobs.id.in_(sorted(set(job_ids))), jobs.status == JobStatus.QUEUED.value)
        .values(
            status=JobStatus.RUNNING.value,
            started_at=now or utcnow(),
            attempts=jobs.attempts + 1,
            worker=worker,
        )
        .returning(*_columns(*_CHANGED, Job.input, Job.params, Job.attempts, Job.created_at, Job.priority))
    )
    return {row.id: row for row in rows}


def finish(
    session: Session,
    job_id: str,
    status: JobStatus,
    *,
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    usage: dict[str, int] | None = None,
    classified_texts: int | None = None,
    expected: JobStatus = JobStatus.RUNNING,
    worker: str | None = None,
) -> AnyRow | None:
    """Write a terminal state (succeeded, failed, canceled, expired) if the job is still `expected`
    (and, with `worker`, still that worker's), with its accounting columns (tokens of `usage`,
    `classified_texts`: see `shared.usage`). The changed row (id, task, webhook, webhook_events and
    `_ACCOUNTED`), or None (and nothing written): the first terminal state wins. An `expired` job
    never started, so its `started_at` is cleared. Callers go through `shared.lifecycle.end_jobs`."""
    if status not in TERMINAL_STATUSES:
        raise ValueError(f"{status} is not terminal")
    values: dict[str, Any] = {
        "status": status.value,
        "result": result,
        "error": error,
        "finished_at": utcnow(),
        "classified_texts": classified_texts,
    }
    if status is JobStatus.EXPIRED:
        values["started_at"] = None
    if usage is not None:
        values["prompt_tokens"] = usage["prompt_tokens"]
        values["completion_tokens"] = usage["completion_tokens"]
    conditions = [Job.id == job_id, Job.status == expected.value]
    if worker is not None:  # only the job's current claimant may finish it
        conditions.append(Job.worker == worker)
    return session.execute(
        update(Job)
        .where(*conditions)
        .values(**values)
        .returning(*_CHANGED, *_ACCOUNTED)
        .execution_options(synchronize_session=False)
    ).first()


def requeue(session: Session, job_id: str, *, enqueue_at: datetime) -> bool:
    """`running` -> `queued` (a transient failure, a draining worker, a lost worker): the job forgets
    its worker; `enqueue_at` is when its message is (re-)sent. False if it was not running."""
    outcome = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING.value)
        .values(status=JobStatus.QUEUED.value, worker=None, started_at=None, enqueued_at=enqueue_at)
        .execution_options(synchronize_session=False)
    )
    return bool(outcome.rowcount)  # type: ignore[attr-defined]


def take_stale_queued(
    session: Session, *, before: datetime, now: datetime, limit: int
) -> list[tuple[str, TaskName, int]]:
    """`queued` jobs whose message was last sent before `before` (a crash between insert and enqueue, or
    a Redis restart, may have lost it), marked sent at `now` (one multi-row UPDATE, job-id order):
    `(id, task, priority)` of each, for the caller to send again (a duplicate is harmless: the first
    claim wins)."""
    rows = session.execute(
        select(Job.id, Job.task, Job.priority)
        .where(Job.status == JobStatus.QUEUED.value, func.coalesce(Job.enqueued_at, Job.created_at) < before)
        .order_by(Job.id)
        .limit(limit)
    ).all()
    if rows:
        session.execute(
            update(Job)
            .where(Job.id.in_([r.id for r in rows]), Job.status == JobStatus.QUEUED.value)
            .values(enqueued_at=now)
            .execution_options(synchronize_session=False)
        )
    return [(r.id, TaskName(r.task), r.priority) for r in rows]


def delete_jobs(session: Session, job_ids: Sequence[str], *, chunk_size: int = 10_000) -> None:
    """Remove job rows (undo a batch insert whose enqueue failed): one statement per `chunk_size` ids."""
    for start in range(0, len(job_ids), chunk_size):
        session.execute(delete(Job).where(Job.id.in_(job_ids[start : start + chunk_size])))


# --- Erasure (retention and DELETE): the data goes, the accounting row stays ----------------------

#: The `error.message` of an erased job (its `error.code` stays).
ERASED_MESSAGE = "erased"
#: The terminal states as stored (erasure and retention read only ended jobs).
TERMINAL_VALUES = [s.value for s in TERMINAL_STATUSES]


def erase(session: Session, job_ids: Sequence[str], *, now: datetime) -> list[str]:
    """Erase the data of the finished, not yet erased jobs among `job_ids`: input, params and
    metadata emptied, result dropped, error cut to its code, `erased_at` set. Task, status, tenant,
    priority, attempts, tokens, worker and timestamps stay (the accounting). The ids erased; a job
    not yet finished is left alone (one UPDATE per error code)."""
    rows = session.execute(
        select(Job.id, Job.error).where(
            Job.id.in_(list(job_ids)), Job.status.in_(TERMINAL_VALUES), Job.erased_at.is_(None)
        )
    ).all()
    by_code: dict[str | None, list[str]] = defaultdict(list)
    for row in rows:
        by_code[(row.error or {}).get("code")].append(row.id)
    for code, ids in by_code.items():
        error = None if code is None else {"code": code, "message": ERASED_MESSAGE}
        session.execute(
            update(Job)
            .where(Job.id.in_(ids), Job.status.in_(TERMINAL_VALUES), Job.erased_at.is_(None))
            .values(input={}, params={}, meta={}, result=None, error=error, erased_at=now)
            .execution_options(synchronize_session=False)
        )
    return [row.id for row in rows]


# --- Benchmarks only (multi-row, unconditional on the worker: no worker runs then) ----------------


def purge_queued(session: Session, reason: str) -> None:
    """Cancel every `queued` job (the benchmark clears its intake jobs before the fleet runs)."""
    session.execute(
        update(Job)
        .where(Job.status == JobStatus.QUEUED.value)
        .values(status=JobStatus.CANCELED.value, error={"code": "canceled", "message": reason})
    )


def succeed_unrun(session: Session, job_ids: Sequence[str], result: dict[str, Any]) -> None:
    """Mark jobs `succeeded` with `result` as if a worker had run them just now (the wait-flood
    benchmark stands in for the worker)."""
    now = utcnow()
    session.execute(
        update(Job)
        .where(Job.id.in_(job_ids))
        .values(status=JobStatus.SUCCEEDED.value, result=result, started_at=now, finished_at=now)
    )
