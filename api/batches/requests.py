"""A batch line's request as a textfleet job: OpenAI request bodies translated to `JobCreate`.

Each translation builds the job's plain JSON and validates it as a `JobCreate`, so a batch line is held
to exactly the rules of `POST /v1/jobs` (limits, NUL, categories, ...), and its error names the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from shared.constants import TaskName
from shared.schemas import JobCreate

__all__ = ["OPENAI_MODERATION_MODELS", "Line", "to_job"]

_JOB = TypeAdapter(JobCreate)

#: OpenAI's moderation model names: they select textfleet's default moderation model.
OPENAI_MODERATION_MODELS = frozenset(
    {
        "omni-moderation-latest",
        "omni-moderation-2024-09-26",
        "text-moderation-latest",
        "text-moderation-stable",
    }
)


class Line(BaseModel):
    """One line of a batch input file."""

    model_config = ConfigDict(extra="forbid")

    custom_id: Annotated[str, Field(min_length=1, max_length=512)]
    method: Literal["POST"]
    url: str
    body: dict[str, Any]


class _Open(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Message(_Open):
    role: Literal["system", "developer", "user", "assistant"]
    content: str
    name: str | None = None


class _Sampling(_Open):
    model: Annotated[str, Field(min_length=1, max_length=128)]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    n: Literal[1] | None = None
    stream: Literal[False] | None = None
    user: str | None = None


class _Chat(_Sampling):
    messages: Annotated[list[_Message], Field(min_length=1)]
    max_completion_tokens: int | None = None
    response_format: dict[str, Any] | None = None


class _Completion(_Sampling):
    prompt: str


class _Moderation(_Open):
    input: str | Annotated[list[str], Field(min_length=1, max_length=1)]
    model: Annotated[str, Field(min_length=1, max_length=128)] | None = None


def _params(body: _Sampling, *, max_tokens: int | None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "max_tokens": max_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "stop": body.stop,
        "seed": body.seed,
        "presence_penalty": body.presence_penalty,
        "frequency_penalty": body.frequency_penalty,
    }
    return {key: value for key, value in params.items() if value is not None}


def _job(data: dict[str, Any], priority: int) -> JobCreate:
    data.setdefault("priority", priority)
    return _JOB.validate_python(data)


def to_job(url: str, body: dict[str, Any], priority: int) -> tuple[JobCreate, str | None]:
    """The job that runs a request to `url` with `body`, and the model the request named.

    Raises pydantic's ValidationError (its locations relative to `body`) when the body is invalid."""
    if url == "/v1/jobs":
        return _job(dict(body), priority), None
    if url == "/v1/moderations":
        moderation = _Moderation.model_validate(body)
        text = moderation.input if isinstance(moderation.input, str) else moderation.input[0]
        params: dict[str, Any] = {}
        if moderation.model is not None and moderation.model not in OPENAI_MODERATION_MODELS:
            params["model"] = moderation.model  # a custom model (`textfleet train`)
        job = _job({"task": TaskName.MODERATE.value, "input": {"text": text}, "params": params}, priority)
        return job, moderation.model or "omni-moderation-latest"
    if url == "/v1/chat/completions":
        chat = _Chat.model_validate(body)
        messages = [
            {"role": "system" if m.role == "developer" else m.role, "content": m.content}
            for m in chat.messages
        ]
        params = _params(chat, max_tokens=chat.max_completion_tokens or chat.max_tokens)
        if chat.response_format is not None:
            params["response_format"] = chat.response_format
        job = _job(
            {"task": TaskName.GENERATE.value, "input": {"messages": messages}, "params": params}, priority
        )
        return job, chat.model
    if url == "/v1/completions":
        completion = _Completion.model_validate(body)
        params = _params(completion, max_tokens=completion.max_tokens)
        job = _job(
            {"task": TaskName.GENERATE.value, "input": {"prompt": completion.prompt}, "params": params},
            priority,
        )
        return job, completion.model
    raise ValueError(f"unknown url {url!r}")
