"""OpenAI's `batch` object as every batch route returns it and a batch's webhook event carries it
(`batch_out`); shared by the API and the webhook worker."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from shared.db.batch_models import Batch

__all__ = ["BatchOut", "BatchStatus", "RequestCounts", "batch_out"]

BatchStatus = Literal[
    "validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"
]


class RequestCounts(BaseModel):
    total: int
    completed: int
    failed: int


class BatchOut(BaseModel):
    """OpenAI's `batch` object."""

    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: dict[str, Any] | None = None
    input_file_id: str
    completion_window: str
    status: BatchStatus
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: RequestCounts
    metadata: dict[str, Any] | None = None


def _ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def batch_out(row: Batch, counts: RequestCounts) -> BatchOut:
    return BatchOut(
        id=row.id,
        endpoint=row.endpoint,
        errors={"object": "list", "data": row.errors} if row.errors else None,
        input_file_id=row.input_file_id,
        completion_window=row.completion_window,
        status=row.status,
        output_file_id=row.output_file_id,
        error_file_id=row.error_file_id,
        created_at=int(row.created_at.timestamp()),
        in_progress_at=_ts(row.in_progress_at),
        expires_at=_ts(row.expires_at),
        finalizing_at=_ts(row.finalizing_at),
        completed_at=_ts(row.completed_at),
        failed_at=_ts(row.failed_at),
        expired_at=_ts(row.expired_at),
        cancelling_at=_ts(row.cancelling_at),
        cancelled_at=_ts(row.cancelled_at),
        request_counts=counts,
        metadata=row.meta,
    )
