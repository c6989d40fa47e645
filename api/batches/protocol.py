"""OpenAI's batch objects: what `POST /v1/batches` takes and what every batch route returns."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from shared.db.batch_models import Batch
from shared.validation import RequestModel

__all__ = [
    "ENDPOINTS",
    "BatchCreate",
    "BatchList",
    "BatchOut",
    "BatchStatus",
    "RequestCounts",
    "batch_out",
    "window",
]

#: The request URLs a batch line may name (a batch has one; every line must name it).
ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/moderations", "/v1/jobs")

BatchStatus = Literal[
    "validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"
]

_WINDOW = re.compile(r"^([1-9][0-9]{0,3})([hm])$")


def _check_window(value: str) -> str:
    match = _WINDOW.match(value)
    if match is None or window(value) > timedelta(days=7):
        raise ValueError('must be a duration like "24h" (OpenAI\'s only value) or "30m", at most 7 days')
    return value


def window(value: str) -> timedelta:
    """The duration of a completion window ("24h", "90m")."""
    match = _WINDOW.match(value)
    assert match is not None
    amount, unit = int(match.group(1)), match.group(2)
    return timedelta(hours=amount) if unit == "h" else timedelta(minutes=amount)


class BatchCreate(RequestModel):
    """`POST /v1/batches`, as OpenAI's client sends it."""

    input_file_id: Annotated[str, Field(min_length=1, max_length=64)]
    endpoint: Literal["/v1/chat/completions", "/v1/completions", "/v1/moderations", "/v1/jobs"]
    completion_window: Annotated[
        str,
        Field(description='How long the batch may run: "24h" (OpenAI), or any "<N>h" / "<N>m" up to 7 days.'),
        AfterValidator(_check_window),
    ] = "24h"
    metadata: Annotated[
        dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]] | None,
        Field(max_length=16, description="Up to 16 key/values (OpenAI's limits), returned unchanged."),
    ] = None
    output_expires_after: dict[str, Any] | None = Field(
        None, description="Accepted for compatibility; output files are kept as long as the batch."
    )


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


class BatchList(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchOut]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


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
