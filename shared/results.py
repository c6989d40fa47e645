"""What comes back: job statuses, each task's `result` (workers write them), jobs and errors as the API
returns them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from shared.constants import TaskName

__all__ = [
    "TERMINAL_STATUSES",
    "EntitiesResult",
    "Entity",
    "ErrorBody",
    "ErrorResponse",
    "ExtractResult",
    "GenerateResult",
    "JobError",
    "JobList",
    "JobOut",
    "JobStatus",
    "ModerationResult",
    "RiskResult",
    "SentimentResult",
    "SummarizeResult",
    "Usage",
    "WebhookDeliveryOut",
]


class JobStatus(StrEnum):
    """Where a job is in its life. Exactly one of the last four is final."""

    QUEUED = "queued"  # stored and enqueued; no worker has claimed it yet
    RUNNING = "running"  # claimed by a worker (conditional update queued -> running)
    SUCCEEDED = "succeeded"  # finished; `result` holds the output
    FAILED = "failed"  # finished without a result; `error` holds {code, message}
    CANCELED = "canceled"  # a client canceled it before it finished
    EXPIRED = "expired"  # it waited in the queue past its time to live and never ran

    @property
    def is_terminal(self) -> bool:
        """Whether no further transition can happen."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.EXPIRED})


class Usage(BaseModel):
    """Tokens a generation job consumed."""

    prompt_tokens: int
    completion_tokens: int


class GenerateResult(BaseModel):
    text: str
    finish_reason: Literal["stop", "length", "abort"] | str
    usage: Usage
    moderation: ModerationResult | None = Field(
        None, description="The moderation of `text`, with `params.moderate_output` (a guardrail)."
    )


class SummarizeResult(BaseModel):
    summary: str
    usage: Usage


class ModerationResult(BaseModel):
    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]]
    thresholds: Annotated[
        dict[str, float] | None, Field(description="The threshold applied to each scored category.")
    ] = None
    model: Annotated[str | None, Field(description="The custom model that scored the text, if any.")] = None


class RiskResult(BaseModel):
    score: Annotated[float, Field(ge=0.0, le=1.0)]
    level: Literal["low", "medium", "high"]
    labels: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]]


class SentimentResult(BaseModel):
    label: Literal["negative", "neutral", "positive"]
    scores: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]]


class Entity(BaseModel):
    text: str = Field(description="The entity as written: always `input.text[start:end]`.")
    type: str = Field(
        description="PERSON, ORG, LOCATION, MISC (model); MONEY, DATE, EMAIL, PHONE, URL (rules)."
    )
    start: Annotated[int, Field(ge=0, description="Offset of its first character (Python string index).")]
    end: Annotated[int, Field(ge=0, description="Offset just past its last character.")]
    score: Annotated[float, Field(ge=0.0, le=1.0, description="Model confidence; 1.0 for rule matches.")]


class EntitiesResult(BaseModel):
    entities: list[Entity] = Field(description="Non-overlapping entities in text order.")


class ExtractResult(BaseModel):
    data: JsonValue = Field(description="The extracted JSON, valid against the job's schema.")
    usage: Usage


# --- Job as returned by the API ------------------------------------------------------------------


class JobError(BaseModel):
    """Why a job failed."""

    code: str
    message: str


class WebhookDeliveryOut(BaseModel):
    """Delivery state of one webhook event of a job."""

    id: str = Field(description="The `webhook-id` header: stable across retries of this event.")
    event: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None


class JobOut(BaseModel):
    """A job as clients see it."""

    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="Sortable id (ULID): later jobs have larger ids.")
    object: Literal["job"] = "job"
    task: TaskName
    status: JobStatus
    input: dict[str, Any]
    params: dict[str, Any]
    metadata: dict[str, Any]
    priority: int
    result: dict[str, Any] | None = None
    error: JobError | None = None
    usage: Usage | None = None
    attempts: int = 0
    worker: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    webhook: str | None = None
    webhook_events: list[str] = Field(default_factory=list)
    webhook_deliveries: list[WebhookDeliveryOut] = Field(default_factory=list)
    erased_at: datetime | None = Field(
        None,
        description="When the job's input, params, metadata, result and error text were erased "
        "(retention, or `DELETE /v1/jobs/{id}`); task, status, usage and timings stay.",
    )


class JobList(BaseModel):
    """A page of jobs, newest first. Pass `next_cursor` as `cursor` for the next page."""

    object: Literal["list"] = "list"
    items: list[JobOut]
    next_cursor: str | None = None


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `validation_error`.")
    message: str = Field(description="What went wrong, for people.")
    field: str | None = Field(None, description="Dotted path of the offending field, when there is one.")
    errors: list[dict[str, Any]] | None = Field(None, description="Every validation problem found.")


class ErrorResponse(BaseModel):
    """Body of every 4xx/5xx response."""

    error: ErrorBody


GenerateResult.model_rebuild()
