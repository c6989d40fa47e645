"""Factories of batch input files (JSONL) and helpers that play the workers' part on batch jobs."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select, update

from shared.db.batch_models import BatchRequest
from shared.db.models import Job, utcnow
from shared.db.session import session_scope

__all__ = ["batch_job_ids", "batch_line", "batch_rows", "finish_batch_jobs", "jsonl", "moderation_lines"]


def batch_line(custom_id: str, url: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def moderation_lines(n: int, *, prefix: str = "req") -> list[dict[str, Any]]:
    """`n` moderation requests, custom ids `<prefix>-0` ... `<prefix>-<n-1>`."""
    return [
        batch_line(
            f"{prefix}-{i}",
            "/v1/moderations",
            {"input": f"text number {i}", "model": "omni-moderation-latest"},
        )
        for i in range(n)
    ]


def jsonl(lines: list[dict[str, Any] | str]) -> bytes:
    """A JSONL file; a `str` item is written as it is (to make bad lines)."""
    return "".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in lines).encode()


def batch_job_ids(database_url: str, batch_id: str) -> dict[str, str]:
    """custom_id -> job id of a batch's requests."""
    with session_scope(database_url) as session:
        rows = session.execute(
            select(BatchRequest.custom_id, BatchRequest.job_id).where(BatchRequest.batch_id == batch_id)
        ).all()
        return {str(row[0]): str(row[1]) for row in rows}


def finish_batch_jobs(
    database_url: str, job_ids: list[str], *, status: str = "succeeded", result: dict[str, Any] | None = None
) -> None:
    """Write a terminal state on jobs, as a worker would."""
    error = None if status == "succeeded" else {"code": "model_error", "message": "the model failed"}
    with session_scope(database_url) as session:
        session.execute(
            update(Job)
            .where(Job.id.in_(job_ids))
            .values(
                status=status,
                result=result if status == "succeeded" else None,
                error=error,
                finished_at=utcnow(),
            )
        )


def batch_rows(
    database_url: str,
    jobs: int,
    *,
    status: str = "in_progress",
    expires_in_s: float = 3600,
    webhook: str | None = None,
) -> str:
    """A batch of `jobs` queued moderation jobs (one request each) written straight to the database."""
    from datetime import timedelta

    from ulid import ULID

    from shared.db.batch_models import Batch
    from tests.utils.factories import job_row

    now = utcnow()
    batch_id = f"batch_{ULID()}"
    rows = [job_row("moderate") for _ in range(jobs)]
    with session_scope(database_url) as session:
        session.add(
            Batch(
                id=batch_id,
                status=status,
                endpoint="/v1/moderations",
                input_file_id="file-x",
                completion_window="24h",
                total=jobs,
                priority=2,
                created_at=now,
                in_progress_at=now,
                expires_at=now + timedelta(seconds=expires_in_s),
                webhook=webhook,
            )
        )
        session.add_all(rows)
        session.add_all(
            BatchRequest(job_id=row.id, batch_id=batch_id, custom_id=f"req-{i}", line=i + 1, item=0)
            for i, row in enumerate(rows)
        )
    return batch_id
