"""HTTP shapes of `/v1/jobs` that are not in `shared/` (the job models themselves are shared)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Header
from pydantic import AfterValidator, BaseModel, Field

from shared.schemas import JobCreate, JobOut
from shared.validation import RequestModel, check_clean_str

__all__ = ["IdempotencyKeyHeader", "JobBatch", "JobBatchCreate"]


class JobBatchCreate(RequestModel):
    """Jobs to submit together: all are stored and enqueued, or (any invalid) none is."""

    jobs: list[JobCreate] = Field(
        min_length=1,
        description="1 to `bulk_max_jobs` (default 10,000) jobs, each exactly a `POST /v1/jobs` body.",
    )


class JobBatch(BaseModel):
    """The jobs a batch created, in the order they were given."""

    object: Literal["list"] = "list"
    items: list[JobOut]


def _printable_key(key: str | None) -> str | None:
    """An Idempotency-Key is stored and compared as text: printable ASCII only (no NUL, no controls)."""
    if key is not None and not (check_clean_str(key).isascii() and key.isprintable()):
        raise ValueError("must be printable ASCII (no NUL or control characters)")
    return key


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Makes a retry safe: same key + same body within 24 h returns the original job(s).",
    ),
    AfterValidator(_printable_key),
]
