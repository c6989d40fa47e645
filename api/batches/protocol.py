"""OpenAI's batch objects: what `POST /v1/batches` takes and what every batch route returns (the
`batch` object itself is `shared.batch_objects`, which a batch's webhook event carries too)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AnyHttpUrl, BaseModel, Field

from shared.batch_objects import BatchOut, BatchStatus, RequestCounts, batch_out
from shared.validation import RequestModel, check_no_credentials

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


def _check_webhook_length(url: AnyHttpUrl | None) -> AnyHttpUrl | None:
    if url is not None and len(str(url)) > 2048:  # as a job's webhook (the column's size)
        raise ValueError("webhook URL is longer than 2048 characters")
    return url


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
    webhook: Annotated[
        AnyHttpUrl | None,
        Field(
            description="textfleet's extension: URL that receives one signed (Standard Webhooks) POST when "
            "the batch ends, `batch.completed`, `batch.expired` or `batch.cancelled`, with the batch object "
            '(pass it with the `openai` client as `extra_body={"webhook": ...}`).'
        ),
        AfterValidator(check_no_credentials),
        AfterValidator(_check_webhook_length),
    ] = None


class BatchList(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchOut]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False
