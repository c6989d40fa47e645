"""The client-facing view (`JobOut`) of a jobs row or of a just-built insert row: reads only (the
writes are `shared.db.repository`'s, which re-exports these)."""

from __future__ import annotations

from typing import Any

from shared.constants import TaskName
from shared.db.models import Job
from shared.schemas import JobError, JobOut, JobStatus, Usage

__all__ = ["row_to_out", "to_out"]


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
        erased_at=job.erased_at,
    )
