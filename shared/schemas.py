"""The job contract: what clients send, what workers read, and what comes back.

Request models forbid unknown fields so a typo is a 422 naming the field, not a silent default.
Per-task input/params models are used by the API (to validate before anything is stored) and
by the workers (to parse what they run), so both sides agree on one definition.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    model_validator,
)

from shared.constants import PRIORITY_DEFAULT, PRIORITY_MAX, PRIORITY_MIN, TaskName
from shared.settings import get_settings

__all__ = [
    "TERMINAL_STATUSES",
    "ChatMessage",
    "ClassifyParams",
    "ErrorBody",
    "ErrorResponse",
    "GenerateInput",
    "GenerateJobCreate",
    "GenerateParams",
    "GenerateResult",
    "JobCreate",
    "JobError",
    "JobList",
    "JobOut",
    "JobStatus",
    "ModerateJobCreate",
    "ModerateParams",
    "ModerationResult",
    "RiskJobCreate",
    "RiskResult",
    "SentimentJobCreate",
    "SentimentResult",
    "SummarizeJobCreate",
    "SummarizeParams",
    "SummarizeResult",
    "TextInput",
    "Usage",
    "WebhookDeliveryOut",
    "parse_job_payload",
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


# --- Field validators that read settings (limits are configuration, not constants) -------------


def _bounded_text(value: str) -> str:
    limit = get_settings().max_input_chars
    if len(value) > limit:
        raise ValueError(f"text is {len(value)} characters long; the maximum is {limit}")
    return value


def _bounded_max_tokens(value: int | None) -> int | None:
    limit = get_settings().max_tokens_limit
    if value is not None and value > limit:
        raise ValueError(f"max_tokens is {value}; the maximum is {limit}")
    return value


def _bounded_timeout(value: float | None) -> float | None:
    limit = get_settings().max_timeout_s
    if value is not None and value > limit:
        raise ValueError(f"timeout_s is {value}; the maximum is {limit}")
    return value


def _bounded_ttl(value: float | None) -> float | None:
    limit = get_settings().max_ttl_s
    if value is not None and value > limit:
        raise ValueError(f"ttl_s is {value}; the maximum is {limit}")
    return value


BoundedText = Annotated[str, Field(min_length=1), AfterValidator(_bounded_text)]
MaxTokens = Annotated[int | None, Field(default=None, ge=1), AfterValidator(_bounded_max_tokens)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Deadlines(_Strict):
    """Deadlines every task accepts."""

    timeout_s: Annotated[
        float | None,
        Field(gt=0, description="Run-time limit; past it the job is aborted and fails with code `timeout`."),
        AfterValidator(_bounded_timeout),
    ] = None
    ttl_s: Annotated[
        float | None,
        Field(gt=0, description="Time allowed in the queue; a job not started by then ends `expired`."),
        AfterValidator(_bounded_ttl),
    ] = None


# --- Inputs and params ---------------------------------------------------------------------------


class ChatMessage(_Strict):
    """One chat turn; the model's chat template is applied to the list."""

    role: Literal["system", "user", "assistant"]
    content: BoundedText


class GenerateInput(_Strict):
    """Either a raw `prompt` or chat `messages` (exactly one)."""

    prompt: BoundedText | None = None
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=256)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> GenerateInput:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of `prompt` or `messages`")
        if self.messages is not None:
            total = sum(len(m.content) for m in self.messages)
            limit = get_settings().max_input_chars
            if total > limit:
                raise ValueError(f"messages hold {total} characters in all; the maximum is {limit}")
        return self


class GenerateParams(_Deadlines):
    """Sampling parameters, named as in vLLM's `SamplingParams`."""

    max_tokens: MaxTokens = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 1.0
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    top_k: Annotated[int, Field(ge=-1)] = -1
    stop: Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=16)] | str | None = None
    seed: int | None = None
    min_tokens: Annotated[int, Field(ge=0)] = 0
    presence_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] = 0.0
    frequency_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] = 0.0
    repetition_penalty: Annotated[float, Field(gt=0.0, le=2.0)] = 1.0

    @model_validator(mode="after")
    def _min_below_max(self) -> GenerateParams:
        if self.max_tokens is not None and self.min_tokens > self.max_tokens:
            raise ValueError("min_tokens must not exceed max_tokens")
        return self


class TextInput(_Strict):
    """A single text to summarize or classify."""

    text: BoundedText


class SummarizeParams(_Deadlines):
    """Summary length in tokens."""

    max_tokens: MaxTokens = None


class ClassifyParams(_Deadlines):
    """Classifier tasks take only the deadlines."""


#: What a custom model name looks like (its directory under `models_dir/custom`).
MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class ModerateParams(ClassifyParams):
    """Moderation as a policy: which categories to score, per-category thresholds, which model."""

    categories: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=64)]] | None,
        Field(min_length=1, max_length=64, description="Score only these categories (default: all)."),
    ] = None
    thresholds: Annotated[
        dict[Annotated[str, Field(min_length=1, max_length=64)], Probability] | None,
        Field(max_length=64, description="Per-category thresholds replacing the model's own."),
    ] = None
    model: Annotated[
        str | None,
        Field(
            pattern=MODEL_NAME_PATTERN,
            description="A custom model trained with `textfleet train` (see `textfleet models list`).",
        ),
    ] = None

    @model_validator(mode="after")
    def _known_categories(self) -> ModerateParams:
        if self.model is not None:
            return self  # a custom model's labels are checked by the worker that loads it
        from shared.settings import MODERATION_CATEGORIES

        named = [*(self.categories or []), *(self.thresholds or {})]
        unknown = sorted(set(named) - set(MODERATION_CATEGORIES))
        if unknown:
            raise ValueError(f"unknown moderation categories {unknown}; known: {list(MODERATION_CATEGORIES)}")
        return self


# --- Job creation (a discriminated union on `task`) ----------------------------------------------

Metadata = Annotated[
    dict[Annotated[str, Field(max_length=64)], JsonValue],
    Field(max_length=64, description="Your own key/values, stored and returned unchanged."),
]
Priority = Annotated[
    int,
    Field(ge=PRIORITY_MIN, le=PRIORITY_MAX, description="0 (lowest) to 9 (highest); higher runs first."),
]


WebhookEvent = Literal["started", "completed"]


class _JobCreateBase(_Strict):
    metadata: Metadata = Field(default_factory=dict)
    priority: Priority = PRIORITY_DEFAULT
    webhook: Annotated[
        AnyHttpUrl | None,
        Field(description="URL that receives signed (Standard Webhooks) POSTs about this job."),
    ] = None
    webhook_events: Annotated[
        list[WebhookEvent] | None,
        Field(min_length=1, description="Which events to send: `started`, `completed` (default: completed)."),
    ] = None

    @model_validator(mode="after")
    def _webhook_consistent(self) -> _JobCreateBase:
        if self.webhook_events is not None and self.webhook is None:
            raise ValueError("webhook_events needs a webhook URL")
        if self.webhook is not None and len(str(self.webhook)) > 2048:
            raise ValueError("webhook URL is longer than 2048 characters")
        return self

    @property
    def events(self) -> list[str]:
        """The webhook events to deliver (none without a webhook)."""
        if self.webhook is None:
            return []
        return sorted(set(self.webhook_events or ["completed"]))


class GenerateJobCreate(_JobCreateBase):
    task: Literal[TaskName.GENERATE]
    input: GenerateInput
    params: GenerateParams = Field(default_factory=GenerateParams)


class SummarizeJobCreate(_JobCreateBase):
    task: Literal[TaskName.SUMMARIZE]
    input: TextInput
    params: SummarizeParams = Field(default_factory=SummarizeParams)


class ModerateJobCreate(_JobCreateBase):
    task: Literal[TaskName.MODERATE]
    input: TextInput
    params: ModerateParams = Field(default_factory=ModerateParams)


class RiskJobCreate(_JobCreateBase):
    task: Literal[TaskName.RISK]
    input: TextInput
    params: ClassifyParams = Field(default_factory=ClassifyParams)


class SentimentJobCreate(_JobCreateBase):
    task: Literal[TaskName.SENTIMENT]
    input: TextInput
    params: ClassifyParams = Field(default_factory=ClassifyParams)


JobCreate = Annotated[
    GenerateJobCreate | SummarizeJobCreate | ModerateJobCreate | RiskJobCreate | SentimentJobCreate,
    Field(discriminator="task"),
]

_PAYLOADS: dict[TaskName, tuple[type[BaseModel], type[BaseModel]]] = {
    TaskName.GENERATE: (GenerateInput, GenerateParams),
    TaskName.SUMMARIZE: (TextInput, SummarizeParams),
    TaskName.MODERATE: (TextInput, ModerateParams),
    TaskName.RISK: (TextInput, ClassifyParams),
    TaskName.SENTIMENT: (TextInput, ClassifyParams),
}


def parse_job_payload(
    task: TaskName | str, input_: dict[str, Any], params: dict[str, Any]
) -> tuple[BaseModel, BaseModel]:
    """Parse a stored job's input and params with its task's models (used by workers)."""
    input_model, params_model = _PAYLOADS[TaskName(task)]
    return input_model.model_validate(input_), params_model.model_validate(params)


# --- Results -------------------------------------------------------------------------------------


class Usage(BaseModel):
    """Tokens a generation job consumed."""

    prompt_tokens: int
    completion_tokens: int


class GenerateResult(BaseModel):
    text: str
    finish_reason: Literal["stop", "length", "abort"] | str
    usage: Usage


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
