"""Factories of finished jobs, as the OpenAI endpoints read them back (`JobOut`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ulid import ULID

from shared.results import JobOut, JobStatus

__all__ = ["finished_job"]


def finished_job(
    task: str = "generate",
    result: dict[str, Any] | None = None,
    *,
    status: JobStatus = JobStatus.SUCCEEDED,
    error: dict[str, str] | None = None,
) -> JobOut:
    """A terminal job of `task` (generate: a short text, with usage; moderate: give `result`)."""
    usage = None
    if result is None and task == "generate" and status is JobStatus.SUCCEEDED:
        result = {
            "text": "Blue.",
            "finish_reason": "stop",
            "usage": {"prompt_tokens": 20, "completion_tokens": 3},
        }
    if result is not None and "usage" in result:
        usage = result["usage"]
    now = datetime(2026, 12, 2, tzinfo=UTC)
    return JobOut.model_validate(
        {
            "id": str(ULID()),
            "task": task,
            "status": status,
            "input": {},
            "params": {},
            "metadata": {},
            "priority": 9,
            "result": result,
            "error": error,
            "usage": usage,
            "created_at": now,
            "finished_at": now,
        }
    )
