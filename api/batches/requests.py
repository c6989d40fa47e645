"""A batch line's request as textfleet jobs, through the same translations as the synchronous OpenAI
endpoints (`api.openai`): one job per input of a moderation, per prompt of a completion, one per chat
completion; a `/v1/jobs` line is exactly a `POST /v1/jobs` body.

Differences from the synchronous endpoints: the jobs run at the batch's priority (not the interactive
one) and with no queue time limit of their own (the batch's window applies); `stream` is refused.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from api.openai.moderation import moderation_jobs
from api.openai.protocol import ChatCompletionRequest, CompletionRequest, ModerationRequest
from api.openai.translate import chat_job, check_model, check_supported, completion_jobs
from shared.errors import InvalidInputError
from shared.schemas import JobCreate

__all__ = ["Line", "LineError", "to_jobs"]

_JOB = TypeAdapter(JobCreate)
#: Any positive queue time limit satisfies the translators; it is removed from the batch's jobs.
_NO_TTL = 1.0


class Line(BaseModel):
    """One line of a batch input file."""

    model_config = ConfigDict(extra="forbid")

    custom_id: Annotated[str, Field(min_length=1, max_length=512)]
    method: Literal["POST"]
    url: str
    body: dict[str, Any]


class LineError(Exception):
    """Why a line's body cannot run: `param` is its dotted path from the line (`body.input`)."""

    def __init__(self, message: str, param: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def _for_batch(job: JobCreate, priority: int) -> JobCreate:
    """A translated job at the batch's priority, without the interactive queue time limit."""
    params = job.params.model_copy(update={"ttl_s": None})
    return job.model_copy(update={"priority": priority, "params": params})


def _translated(url: str, body: dict[str, Any], generation_model: str) -> tuple[list[JobCreate], str | None]:
    if url == "/v1/moderations":
        moderation = ModerationRequest.model_validate(body)
        return list(moderation_jobs(moderation, _NO_TTL)), moderation.model
    if url == "/v1/chat/completions":
        chat = ChatCompletionRequest.model_validate(body)
        _check_generation(chat, generation_model)
        return [chat_job(chat, _NO_TTL)], chat.model
    completion = CompletionRequest.model_validate(body)
    _check_generation(completion, generation_model)
    return list(completion_jobs(completion, _NO_TTL)), completion.model


def _check_generation(request: ChatCompletionRequest | CompletionRequest, generation_model: str) -> None:
    if request.stream:
        raise InvalidInputError("stream is not supported in a batch", field="stream")
    check_supported(request)
    check_model(request.model, generation_model)


def to_jobs(
    url: str, body: dict[str, Any], priority: int, generation_model: str
) -> tuple[list[JobCreate], str | None]:
    """The jobs that run a request to `url` with `body`, and the model the request named.

    Raises pydantic's ValidationError (locations relative to `body`) or LineError."""
    if url == "/v1/jobs":
        data = dict(body)  # a line that sets its own priority keeps it
        data.setdefault("priority", priority)
        return [_JOB.validate_python(data)], None
    try:
        jobs, model = _translated(url, body, generation_model)
    except RequestValidationError as exc:  # a translator's error, its location already the request's
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise LineError(f"{where}: {str(first['msg']).removeprefix('Value error, ')}", where) from None
    except InvalidInputError as exc:
        field = f"body.{exc.field}" if exc.field else None
        raise LineError(f"{field}: {exc.message}" if field else exc.message, field) from None
    return [_for_batch(job, priority) for job in jobs], model
