"""The job contract: what clients send, what workers read, and what comes back.

Request models forbid unknown fields so a typo is a 422 naming the field, not a silent default.
Per-task input/params models are used by the API (to validate before anything is stored) and
by the workers (to parse what they run), so both sides agree on one definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, Union

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    create_model,
    model_validator,
)

from shared.constants import PRIORITY_DEFAULT, PRIORITY_MAX, PRIORITY_MIN, TaskName
from shared.limits import current_limits
from shared.response_format import JsonSchema, ResponseFormat
from shared.results import (
    TERMINAL_STATUSES,
    EntitiesResult,
    Entity,
    ErrorBody,
    ErrorResponse,
    ExtractResult,
    GenerateResult,
    JobError,
    JobList,
    JobOut,
    JobStatus,
    ModerationResult,
    RiskResult,
    SentimentResult,
    SummarizeResult,
    Usage,
    WebhookDeliveryOut,
)
from shared.tasks import TASKS, TaskRegistry
from shared.validation import RequestModel, check_json_bounds, check_no_credentials

__all__ = [
    "JOB_CREATE_MODELS",
    "TERMINAL_STATUSES",
    "ChatMessage",
    "ClassifyParams",
    "EntitiesResult",
    "Entity",
    "ErrorBody",
    "ErrorResponse",
    "ExtractParams",
    "ExtractResult",
    "GenerateInput",
    "GenerateParams",
    "GenerateResult",
    "JobCreate",
    "JobError",
    "JobList",
    "JobOut",
    "JobStatus",
    "ModerateParams",
    "ModerationResult",
    "RiskResult",
    "SentimentResult",
    "SummarizeParams",
    "SummarizeResult",
    "TextInput",
    "Usage",
    "WebhookDeliveryOut",
    "job_create_models",
    "job_create_union",
    "parse_job_payload",
]


# --- Field validators that read settings (limits are configuration, not constants) -------------


def _bounded_text(value: str) -> str:
    limit = current_limits().max_input_chars
    if len(value) > limit:
        raise ValueError(f"text is {len(value)} characters long; the maximum is {limit}")
    return value


def _bounded_max_tokens(value: int | None) -> int | None:
    limit = current_limits().max_tokens_limit
    if value is not None and value > limit:
        raise ValueError(f"max_tokens is {value}; the maximum is {limit}")
    return value


def _bounded_timeout(value: float | None) -> float | None:
    limit = current_limits().max_timeout_s
    if value is not None and value > limit:
        raise ValueError(f"timeout_s is {value}; the maximum is {limit}")
    return value


def _bounded_ttl(value: float | None) -> float | None:
    limit = current_limits().max_ttl_s
    if value is not None and value > limit:
        raise ValueError(f"ttl_s is {value}; the maximum is {limit}")
    return value


BoundedText = Annotated[str, Field(min_length=1), AfterValidator(_bounded_text)]
MaxTokens = Annotated[int | None, Field(default=None, ge=1), AfterValidator(_bounded_max_tokens)]


class _Strict(RequestModel):
    """Request models: unknown fields, NUL, lone surrogates, NaN and Infinity refused (RequestModel)."""


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
            limit = current_limits().max_input_chars
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
    response_format: Annotated[
        ResponseFormat | None,
        Field(description="Constrain the output: json_object, json_schema, regex or choice (issue 14)."),
    ] = None
    moderate_input: bool = Field(
        False,
        description="Guardrail: moderate the prompt first (on the fleet's classify path); a flagged prompt "
        "fails the job with `content_flagged`, naming the categories, before any generation.",
    )
    moderate_output: bool | Literal["block"] = Field(
        False,
        description="Guardrail: moderate the generated text and attach it as `result.moderation`; with "
        '`"block"`, a flagged output fails the job with `content_flagged` instead of being returned.',
    )

    stream: bool = Field(
        False,
        description="Publish the text as it grows on the job's stream channel, which `stream` requests "
        "of the OpenAI endpoints relay as server-sent events; not with `moderate_output` (unchecked text).",
    )

    @model_validator(mode="after")
    def _min_below_max(self) -> GenerateParams:
        if self.max_tokens is not None and self.min_tokens > self.max_tokens:
            raise ValueError("min_tokens must not exceed max_tokens")
        return self

    @model_validator(mode="after")
    def _no_min_tokens_under_a_constraint(self) -> GenerateParams:
        # A grammar may end before min_tokens; forbidding the end-of-text token then leaves nothing valid.
        if self.min_tokens and self.response_format is not None and self.response_format.type != "text":
            raise ValueError("min_tokens cannot be combined with a constraining response_format")
        return self


class TextInput(_Strict):
    """A single text to summarize or classify."""

    text: BoundedText


class SummarizeParams(_Deadlines):
    """Summary length in tokens."""

    max_tokens: MaxTokens = None


class ClassifyParams(_Deadlines):
    """Classifier tasks take only the deadlines."""


class ExtractParams(_Deadlines):
    """What to extract: a JSON Schema (default: entities and relations) and optional instructions."""

    model_config = ConfigDict(
        extra="forbid", strict=True, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    schema_: JsonSchema | None = Field(
        None, alias="schema", description="JSON Schema of `result.data`; default: entities and relations."
    )
    instructions: Annotated[str, Field(min_length=1), AfterValidator(_bounded_text)] | None = None
    max_tokens: MaxTokens = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.0
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    seed: int | None = None


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


def _bounded_metadata(value: Any) -> Any:
    limits = current_limits()
    return check_json_bounds(
        value, name="metadata", max_bytes=limits.max_metadata_bytes, max_depth=limits.max_metadata_depth
    )


Metadata = Annotated[
    dict[Annotated[str, Field(max_length=64)], JsonValue],
    Field(
        max_length=64,
        description="Your own key/values, stored and returned unchanged: at most 64 keys, "
        "`max_metadata_bytes` as compact JSON and `max_metadata_depth` levels of nesting.",
    ),
    BeforeValidator(_bounded_metadata),
]
Priority = Annotated[
    int,
    Field(ge=PRIORITY_MIN, le=PRIORITY_MAX, description="0 (lowest) to 9 (highest); higher runs first."),
]


WebhookEvent = Literal["started", "completed"]


class _JobCreateBase(_Strict):
    """What every `POST /v1/jobs` body has; each task's `<Task>JobCreate` adds `task`, `input`, `params`."""

    metadata: Metadata = Field(default_factory=dict)
    priority: Priority = PRIORITY_DEFAULT
    webhook: Annotated[
        AnyHttpUrl | None,
        Field(description="URL that receives signed (Standard Webhooks) POSTs about this job."),
        AfterValidator(check_no_credentials),
    ] = None
    webhook_events: Annotated[
        list[WebhookEvent] | None,
        Field(min_length=1, description="Which events to send: `started`, `completed` (default: completed)."),
    ] = None
    # Narrowed by each task's model (`job_create_models`); declared here for type checkers.
    task: TaskName
    input: BaseModel
    params: _Deadlines

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


def job_create_models(registry: TaskRegistry = TASKS) -> dict[str, type[_JobCreateBase]]:
    """One `<Task>JobCreate` model per registered task (`task` fixed, its input and params models)."""
    members: dict[str, str] = {member.value: member for member in TaskName}
    models: dict[str, type[_JobCreateBase]] = {}
    for spec in registry:
        tag: Any = Literal[members.get(spec.name, spec.name)]
        params = spec.params_model()
        models[spec.name] = create_model(
            "".join(part.capitalize() for part in spec.name.split("_")) + "JobCreate",
            __base__=_JobCreateBase,
            __module__=__name__,
            task=(tag, ...),
            input=(spec.input_model(), ...),
            params=(params, Field(default_factory=params)),
        )
    return models


def job_create_union(models: Mapping[str, type[_JobCreateBase]]) -> Any:
    """The body of `POST /v1/jobs`: the `<Task>JobCreate` models, discriminated on `task`."""
    members = tuple(models.values())
    if len(members) == 1:
        return members[0]
    return Annotated[Union[members], Field(discriminator="task")]  # noqa: UP007 (a runtime tuple)


#: Each registered task's `<Task>JobCreate` model, by task name (e.g. `JOB_CREATE_MODELS["risk"]`).
JOB_CREATE_MODELS = job_create_models()

if TYPE_CHECKING:
    JobCreate: TypeAlias = _JobCreateBase
else:
    JobCreate = job_create_union(JOB_CREATE_MODELS)


def parse_job_payload(
    task: str, input_: dict[str, Any], params: dict[str, Any], registry: TaskRegistry = TASKS
) -> tuple[BaseModel, BaseModel]:
    """Parse a stored job's input and params with its task's models (used by workers)."""
    spec = registry[task]
    return spec.input_model().model_validate(input_), spec.params_model().model_validate(params)
