"""Every read and write of the `jobs` table.

State changes are conditional updates (`UPDATE ... WHERE status = <expected>`), so two workers can
never both claim a job, and a job's first terminal state is its only one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from ulid import ULID

from shared.constants import TaskName
from shared.db.models import Job, utcnow
from shared.schemas import TERMINAL_STATUSES, JobError, JobOut, JobStatus, Usage

__all__ = [
    "cancel_queued",
    "claim",
    "delete_job",
    "finish",
    "get",
    "insert_jobs",
    "list_jobs",
    "new_job",
    "new_job_id",
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
    outcome = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == expected.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    won = bool(outcome.rowcount)  # type: ignore[attr-defined]
    if not won:
        log.warning("job.finish_ignored", job_id=job_id, status=status.value, expected=expected.value)
    return won


def cancel_queued(session: Session, job_id: str) -> bool:
    """Cancel a job that is still queued. False if it is not queued any more."""
    outcome = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED.value)
        .values(
            status=JobStatus.CANCELED.value,
            finished_at=utcnow(),
            error={"code": "canceled", "message": "canceled by request"},
        )
        .execution_options(synchronize_session=False)
    )
    return bool(outcome.rowcount)  # type: ignore[attr-defined]


def delete_job(session: Session, job_id: str) -> None:
    """Remove a job row (used to undo an insert whose enqueue failed)."""
    session.execute(delete(Job).where(Job.id == job_id))


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
    )
