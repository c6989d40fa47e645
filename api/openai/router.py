"""OpenAI-compatible routes: `/v1/chat/completions`, `/v1/completions`, `/v1/moderations`, `/v1/models`.

Each request runs as high-priority jobs on the fleet's workers (`api.openai.service`), recorded like
any job (`GET /v1/jobs/{id}`: a response's `id` ends with its first job's id). Errors come in OpenAI's
shape (`api.openai.errors`).

Scopes: moderations, chat completions and completions need `jobs:write` (their jobs are the caller's
tenant's; the answer is the result of the caller's own jobs); the model list needs any valid key.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from api.deps import OpenAIDep, PrincipalDep, WriterDep
from api.openai.errors import OpenAIRoute, job_error
from api.openai.moderation import category_map, moderation_jobs, moderation_response
from api.openai.protocol import (
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    ModelCard,
    ModelList,
    ModerationRequest,
    ModerationResponse,
)
from api.openai.streaming import ChatFormat, CompletionFormat, event_stream
from api.openai.translate import (
    chat_job,
    chat_response,
    check_model,
    check_supported,
    completion_jobs,
    completion_response,
)
from shared.errors import InvalidInputError
from shared.results import JobStatus
from shared.schemas import JobOut

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIRoute)

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": '`{"error": {"message", "type", "param", "code"}}`'}
    for code in (400, 404, 409, 500, 503, 504)
}


def _succeeded(jobs: list[JobOut]) -> list[JobOut]:
    """The jobs, or the error of the first that did not succeed."""
    for job in jobs:
        if job.status is not JobStatus.SUCCEEDED:
            raise job_error(job)
    return jobs


def _include_usage(body: ChatCompletionRequest | CompletionRequest) -> bool:
    if body.stream_options is not None and not body.stream:
        raise InvalidInputError(
            "stream_options is only allowed when stream is true",
            field="stream_options",
            code="invalid_request",
        )
    return bool(body.stream_options is not None and body.stream_options.include_usage)


def _models(service: OpenAIDep) -> list[ModelCard]:
    names = [service.generation_model, category_map().default_model]
    return [ModelCard(id=name, created=service.created) for name in names]


@router.get("/models", response_model=ModelList, summary="List models")
async def list_models(service: OpenAIDep, _principal: PrincipalDep) -> ModelList:
    """The fleet's generation model (chat completions, completions) and its moderation model."""
    return ModelList(data=_models(service))


@router.get("/models/{model_id:path}", response_model=ModelCard, summary="Get a model", responses=_ERRORS)
async def get_model(model_id: str, service: OpenAIDep, _principal: PrincipalDep) -> ModelCard:
    for card in _models(service):
        if card.id == model_id:
            return card
    raise InvalidInputError(f"the model {model_id!r} does not exist", field="model", code="model_not_found")


@router.post("/moderations", response_model=ModerationResponse, summary="Moderate text", responses=_ERRORS)
async def create_moderation(
    body: ModerationRequest, service: OpenAIDep, principal: WriterDep
) -> ModerationResponse:
    """One `moderate` job per input on the classifier workers; OpenAI's 13 categories."""
    jobs = await service.run(moderation_jobs(body, service.ttl_s), principal.tenant)
    return moderation_response(_succeeded(jobs), body.model)


@router.post("/chat/completions", response_model=ChatCompletion, summary="Chat completion", responses=_ERRORS)
async def create_chat_completion(
    body: ChatCompletionRequest, service: OpenAIDep, principal: WriterDep
) -> ChatCompletion | Response:
    """A `generate` job with the messages; with `stream`, server-sent events (see the README)."""
    check_supported(body)
    check_model(body.model, service.generation_model)
    include_usage = _include_usage(body)
    job = chat_job(body, service.ttl_s)
    if body.stream:
        submitted = await service.submit([job], principal.tenant)
        form = ChatFormat(submitted, body.model, include_usage)
        return event_stream(service, list(zip(submitted, [job], strict=True)), form)
    [done] = _succeeded(await service.run([job], principal.tenant))
    return chat_response(done, body.model)


@router.post("/completions", response_model=Completion, summary="Completion", responses=_ERRORS)
async def create_completion(
    body: CompletionRequest, service: OpenAIDep, principal: WriterDep
) -> Completion | Response:
    """One `generate` job per prompt; with `stream`, server-sent events (see the README)."""
    check_supported(body)
    check_model(body.model, service.generation_model)
    include_usage = _include_usage(body)
    jobs = completion_jobs(body, service.ttl_s)
    if body.stream:
        submitted = await service.submit(jobs, principal.tenant)
        form = CompletionFormat(submitted, body.model, include_usage)
        return event_stream(service, list(zip(submitted, jobs, strict=True)), form)
    return completion_response(_succeeded(await service.run(jobs, principal.tenant)), body.model)
