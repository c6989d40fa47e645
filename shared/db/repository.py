"""Every read and write of the `jobs` table.

State changes are conditional updates (`UPDATE ... WHERE status = <expected>`), so two workers can
never both claim a job, and a job's first terminal state is its only one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session
from ulid import ULID

from shared.constants import TaskName
from shared.db.models import Job, utcnow
from shared.schemas import TERMINAL_STATUSES, JobError, JobOut, JobStatus, Usage

__all__ = [
    "cancel",
    "cancel_queued",
    "claim",
    "delete_jobs",
    "finish",
    "get",
    "insert_job_rows",
    "insert_jobs",
    "list_jobs",
    "new_job",
    "new_job_id",
    "new_job_row",
    "row_to_out",
    "to_out",
]

log = structlog.get_logger(__name__)


def new_job_id() -> str:
    """A new sortable job id (ULID, 26 characters)."""
    return str(ULID())


def new_job(
    *,
    task: str,
    input_: dict[str, Any],
    params: dict[str, Any],
    metadata: dict[str, Any],
    priority: int,
    job_id: str | None = None,
    created_at: datetime | None = None,
) -> Job:
    """A `queued` job, not yet added to any session."""
    return Job(
        id=job_id or new_job_id(),
        task=task,
        status=JobStatus.QUEUED.value,
        input=input_,
        params=params,
        meta=metadata,
        priority=priority,
        attempts=0,
        created_at=created_at or utcnow(),
    )


def insert_jobs(session: Session, jobs: Iterable[Job]) -> None:
    """Add jobs to the session (written on commit, in one round trip per flush)."""
    session.add_all(list(jobs))


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
) -> dict[str, Any]:
    """The values of a `queued` job as a plain dict keyed by `Job` attribute (for `insert_job_rows`)."""
    return {
        "id": job_id or new_job_id(),
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


def get(session: Session, job_id: str) -> Job | None:
    """The job with `job_id`, or None."""
    return session.get(Job, job_id)


def list_jobs(
    session: Session,
    *,
    limit: int,
    cursor: str | None = None,
    status: JobStatus | None = None,
    task: str | None = None,
) -> tuple[Sequence[Job], str | None]:
    """A page of jobs, newest first, and the cursor of the next page (None on the last)."""
    query = select(Job).order_by(Job.id.desc()).limit(limit + 1)
    if cursor is not None:
        query = query.where(Job.id < cursor)
    if status is not None:
        query = query.where(Job.status == status.value)
    if task is not None:
        query = query.where(Job.task == task)
    rows = session.scalars(query).all()
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].id
    return rows, None


def claim(session: Session, job_id: str, worker: str) -> bool:
    """Move a job `queued` -> `running` for `worker`. False if it was not queued (someone else has it,
    or it was canceled/expired/finished meanwhile)."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED.value)
        .values(
            status=JobStatus.RUNNING.value,
            started_at=utcnow(),
            attempts=Job.attempts + 1,
            worker=worker,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def finish(
    session: Session,
    job_id: str,
    status: JobStatus,
    *,
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    usage: dict[str, int] | None = None,
    expected: JobStatus = JobStatus.RUNNING,
    worker: str | None = None,
) -> bool:
    """Write a terminal state if the job is still `expected`. False (and nothing written) otherwise:
    the first completion wins."""
    if status not in TERMINAL_STATUSES:
        raise ValueError(f"{status} is not terminal")
    values: dict[str, Any] = {
        "status": status.value,
        "result": result,
        "error": error,
        "finished_at": utcnow(),
    }
    if usage is not None:
        values["prompt_tokens"] = usage["prompt_tokens"]
        values["completion_tokens"] = usage["completion_tokens"]
    conditions = [Job.id == job_id, Job.status == expected.value]
    if worker is not None:  # only the job's current claimant may finish it
        conditions.append(Job.worker == worker)
    outcome = session.execute(
        update(Job).where(*conditions).values(**values).execution_options(synchronize_session=False)
    )
    won = bool(outcome.rowcount)  # type: ignore[attr-defined]
    if not won:
        log.warning("job.finish_ignored", job_id=job_id, status=status.value, expected=expected.value)
    return won


def cancel_queued(session: Session, job_id: str) -> bool:
    """Cancel a job that is still queued. False if it is not queued any more."""
    return _cancel_if(session, job_id, JobStatus.QUEUED)


def cancel(session: Session, job_id: str) -> JobStatus | None:
    """Cancel a queued or running job; the status it had (None if it was neither: unknown or terminal)."""
    for expected in (JobStatus.QUEUED, JobStatus.RUNNING):
        if _cancel_if(session, job_id, expected):
            return expected
    return None


def _cancel_if(session: Session, job_id: str, expected: JobStatus) -> bool:
    outcome = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == expected.value)
        .values(
            status=JobStatus.CANCELED.value,
            finished_at=utcnow(),
            error={"code": "canceled", "message": "canceled by request"},
        )
        .execution_options(synchronize_session=False)
    )
    return bool(outcome.rowcount)  # type: ignore[attr-defined]


def delete_jobs(session: Session, job_ids: Sequence[str], *, chunk_size: int = 10_000) -> None:
    """Remove job rows (undo a batch insert whose enqueue failed): one statement per `chunk_size` ids."""
    for start in range(0, len(job_ids), chunk_size):
        session.execute(delete(Job).where(Job.id.in_(job_ids[start : start + chunk_size])))


def row_to_out(row: dict[str, Any]) -> JobOut:
    """The client-facing view of a just-created job from its `new_job_row` values (no database read)."""
    return JobOut(
        id=row["id"],
        task=TaskName(row["task"]),
        status=JobStatus(row["status"]),
        input=row["input"],
        params=row["params"],
        metadata=row["meta"],
        priority=row["priority"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        webhook=row.get("webhook"),
        webhook_events=row.get("webhook_events") or [],
    )


def to_out(job: Job) -> JobOut:
    """The client-facing view of a job row."""
    return JobOut(
        id=job.id,
        task=TaskName(job.task),
        status=JobStatus(job.status),
        input=job.input,
        params=job.params,
        metadata=job.meta,
        priority=job.priority,
        result=job.result,
        error=JobError.model_validate(job.error) if job.error else None,
        usage=Usage.model_validate(job.usage) if job.usage else None,
        attempts=job.attempts,
        worker=job.worker,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        webhook=job.webhook,
        webhook_events=(job.webhook_events or ["completed"]) if job.webhook else [],
    )
