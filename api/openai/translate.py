"""OpenAI requests as textfleet jobs, and finished jobs as OpenAI responses (chat completions and
completions; moderations are in `api.openai.moderation`).

| OpenAI parameter                          | `generate` job                                  |
|-------------------------------------------|-------------------------------------------------|
| `messages` (system/developer/user/assistant; text parts joined) | `input.messages` (developer -> system) |
| `prompt` (a string, or a list: one job each) | `input.prompt`                               |
| `max_completion_tokens`, else `max_tokens` | `params.max_tokens` (default: the fleet's)     |
| `temperature`, `top_p`, `stop`, `seed`, `presence_penalty`, `frequency_penalty` | same names |
| `response_format` (text, json_object, json_schema; also regex, choice) | `params.response_format` |
| `top_k`, `min_tokens`, `repetition_penalty`, `moderate_input`, `moderate_output` (extra_body) | same names |
| `metadata`, `user`                        | `metadata` (with `openai_endpoint`)             |

Every job is submitted at `INTERACTIVE_PRIORITY` with `ttl_s` = `INTERACTIVE_TTL_S`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from pydantic import BaseModel, ValidationError

from api.openai.errors import validation_error
from api.openai.protocol import (
    UNSUPPORTED,
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    UsageOut,
)
from api.openai.service import INTERACTIVE_PRIORITY
from shared.errors import InvalidInputError
from shared.schemas import GenerateJobCreate, JobOut

__all__ = [
    "chat_job",
    "chat_response",
    "check_model",
    "check_supported",
    "completion_jobs",
    "completion_response",
    "created",
    "usage",
]

_SAMPLING = (
    "temperature",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "top_k",
    "min_tokens",
    "repetition_penalty",
    "moderate_input",
    "moderate_output",
)


#: Values that leave an unsupported parameter unused (`"logprobs": false`, `"tools": []`).
_EMPTY: tuple[Any, ...] = (False, [], {})


def check_supported(request: BaseModel) -> None:
    """A 400 naming the first parameter set to a value textfleet cannot honour (`n` other than 1...)."""
    for name, neutral in UNSUPPORTED.items():
        if name in type(request).model_fields:
            value = getattr(request, name)
            if value is not None and value != neutral and not (neutral is None and value in _EMPTY):
                allowed = "is not supported" if neutral is None else f"must be {neutral!r}"
                raise InvalidInputError(
                    f"{name} {allowed} on this server", field=name, code="unsupported_parameter"
                )


def check_model(model: str, served: str) -> None:
    """A 404 (`model_not_found`) for any model but the fleet's generation model."""
    if model != served:
        raise InvalidInputError(
            f"the model {model!r} does not exist; this fleet serves {served!r} (see GET /v1/models)",
            field="model",
            code="model_not_found",
        )


def _params(request: ChatCompletionRequest | CompletionRequest, ttl_s: float) -> dict[str, Any]:
    params: dict[str, Any] = {
        name: getattr(request, name) for name in _SAMPLING if getattr(request, name) is not None
    }
    max_tokens = getattr(request, "max_completion_tokens", None) or request.max_tokens
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    response_format = getattr(request, "response_format", None)
    if response_format is not None:
        params["response_format"] = response_format.model_dump(mode="json", exclude_none=True)
    params["ttl_s"] = ttl_s
    return params


def _metadata(request: ChatCompletionRequest | CompletionRequest, endpoint: str) -> dict[str, Any]:
    metadata: dict[str, Any] = dict(getattr(request, "metadata", None) or {})
    if request.user is not None:
        metadata["openai_user"] = request.user
    metadata["openai_endpoint"] = endpoint
    return metadata


def _renamer(request: ChatCompletionRequest | CompletionRequest) -> Any:
    """Renames a job field's location to the request parameter it came from."""
    max_tokens = "max_completion_tokens" if getattr(request, "max_completion_tokens", None) else "max_tokens"

    def rename(loc: tuple[Any, ...]) -> tuple[Any, ...]:
        if loc[:1] == ("input",):
            return loc[1:]
        if loc[:2] == ("params", "max_tokens"):
            return (max_tokens, *loc[2:])
        if loc[:1] == ("params",):
            return loc[1:]
        return loc

    return rename


def _job(raw: dict[str, Any], request: ChatCompletionRequest | CompletionRequest) -> GenerateJobCreate:
    try:
        return GenerateJobCreate.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc, _renamer(request)) from None


def chat_job(request: ChatCompletionRequest, ttl_s: float) -> GenerateJobCreate:
    """The `generate` job of a chat completion request."""
    messages = [
        {"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in request.messages
    ]
    raw = {
        "task": "generate",
        "input": {"messages": messages},
        "params": _params(request, ttl_s),
        "metadata": _metadata(request, "chat.completions"),
        "priority": INTERACTIVE_PRIORITY,
    }
    return _job(raw, request)


def _rename_prompt(where: tuple[Any, ...], rename: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    return (*where, *loc[2:]) if loc[:2] == ("input", "prompt") else tuple(rename(loc))


def completion_jobs(request: CompletionRequest, ttl_s: float) -> list[GenerateJobCreate]:
    """One `generate` job per prompt of a completion request."""
    prompts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
    params = _params(request, ttl_s)
    metadata = _metadata(request, "completions")
    jobs = []
    for index, prompt in enumerate(prompts):
        raw = {
            "task": "generate",
            "input": {"prompt": prompt},
            "params": params,
            "metadata": metadata,
            "priority": INTERACTIVE_PRIORITY,
        }
        try:
            jobs.append(GenerateJobCreate.model_validate(raw))
        except ValidationError as exc:
            where: tuple[Any, ...] = ("prompt",) if isinstance(request.prompt, str) else ("prompt", index)
            raise validation_error(exc, partial(_rename_prompt, where, _renamer(request))) from None
    return jobs


# --- Responses -----------------------------------------------------------------------------------


def created(job: JobOut) -> int:
    """OpenAI's `created`: the job's creation time in Unix seconds."""
    return int(job.created_at.timestamp())


def usage(jobs: list[JobOut]) -> UsageOut:
    """Tokens used by all the jobs (from each job's recorded usage)."""
    prompt = sum(job.usage.prompt_tokens for job in jobs if job.usage is not None)
    completion = sum(job.usage.completion_tokens for job in jobs if job.usage is not None)
    return UsageOut(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def _result(job: JobOut) -> dict[str, Any]:
    assert job.result is not None, "a succeeded generate job has a result"
    return job.result


def chat_response(job: JobOut, model: str) -> ChatCompletion:
    result = _result(job)
    return ChatCompletion.model_validate(
        {
            "id": f"chatcmpl-{job.id}",
            "created": created(job),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result["text"]},
                    "finish_reason": result["finish_reason"],
                }
            ],
            "usage": usage([job]),
        }
    )


def completion_response(jobs: list[JobOut], model: str) -> Completion:
    choices = [
        {"index": index, "text": _result(job)["text"], "finish_reason": _result(job)["finish_reason"]}
        for index, job in enumerate(jobs)
    ]
    return Completion.model_validate(
        {
            "id": f"cmpl-{jobs[0].id}",
            "created": created(jobs[0]),
            "model": model,
            "choices": choices,
            "usage": usage(jobs),
        }
    )
