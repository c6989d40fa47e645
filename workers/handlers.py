"""What each task does with a job's parsed input: one handler per task, returning the result object."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from shared.constants import TaskName
from shared.schemas import (
    EntitiesResult,
    GenerateInput,
    GenerateParams,
    GenerateResult,
    ModerateParams,
    ModerationResult,
    RiskResult,
    SentimentResult,
    SummarizeParams,
    SummarizeResult,
    TextInput,
)
from workers.engines.base import GenerationRequest
from workers.extract import check_output, extract
from workers.guardrails import fleet_moderator, guard_input, guard_output
from workers.runtime import WorkerRuntime

__all__ = ["HANDLERS", "SUMMARY_SYSTEM_PROMPT", "HandlerResult", "summary_messages"]

SUMMARY_SYSTEM_PROMPT = "You are a careful assistant. You write short, faithful summaries and add nothing."


@dataclass(frozen=True)
class HandlerResult:
    """A task's result object and, for generation, the tokens it used."""

    result: dict[str, Any]
    usage: dict[str, int] | None = None


Handler = Callable[[WorkerRuntime, str, BaseModel, BaseModel, float | None], HandlerResult]


def summary_messages(text: str) -> list[dict[str, str]]:
    """The chat prompt of a summary."""
    return [
        {"role": "system", "content": SUMMARY_SYSTEM_PROMPT},
        {
            "role": "user",
            "content": f"Summarize the following text in two or three sentences.\n\nText:\n{text}",
        },
    ]


def _generate(
    rt: WorkerRuntime, job_id: str, input_: BaseModel, params: BaseModel, timeout_s: float | None
) -> HandlerResult:
    assert isinstance(input_, GenerateInput)
    assert isinstance(params, GenerateParams)
    moderate = fleet_moderator(rt, job_id, timeout_s)
    guard_input(input_, params, moderate)
    request = GenerationRequest(
        request_id=job_id,
        params=params,
        prompt=input_.prompt,
        messages=[m.model_dump() for m in input_.messages] if input_.messages is not None else None,
        max_tokens=params.max_tokens or rt.settings.default_max_tokens,
        constraint=params.response_format.constraint() if params.response_format is not None else None,
    )
    out = rt.require_generation().generate(request, timeout_s=timeout_s)
    if request.constraint is not None:
        check_output(request.constraint, out, request.max_tokens)
    usage = {"prompt_tokens": out.prompt_tokens, "completion_tokens": out.completion_tokens}
    moderation = guard_output(out.text, params, moderate)
    result = GenerateResult.model_validate(
        {"text": out.text, "finish_reason": out.finish_reason, "usage": usage, "moderation": moderation}
    )
    return HandlerResult(result.model_dump(exclude_none=moderation is None), usage)


def _summarize(
    rt: WorkerRuntime, job_id: str, input_: BaseModel, params: BaseModel, timeout_s: float | None
) -> HandlerResult:
    assert isinstance(input_, TextInput)
    assert isinstance(params, SummarizeParams)
    request = GenerationRequest(
        request_id=job_id,
        params=GenerateParams(temperature=0.0, repetition_penalty=1.1),
        messages=summary_messages(input_.text),
        max_tokens=params.max_tokens or rt.settings.summary_max_tokens,
    )
    out = rt.require_generation().generate(request, timeout_s=timeout_s)
    usage = {"prompt_tokens": out.prompt_tokens, "completion_tokens": out.completion_tokens}
    result = SummarizeResult.model_validate({"summary": out.text.strip(), "usage": usage})
    return HandlerResult(result.model_dump(), usage)


def _classifier(result_model: type[BaseModel], task: TaskName) -> Handler:
    def handle(
        rt: WorkerRuntime, job_id: str, input_: BaseModel, params: BaseModel, timeout_s: float | None
    ) -> HandlerResult:
        assert isinstance(input_, TextInput)
        raw = rt.require_classifiers().classify(task, input_.text, timeout_s=timeout_s)
        return HandlerResult(result_model.model_validate(raw).model_dump())

    return handle


def _extract(
    rt: WorkerRuntime, job_id: str, input_: BaseModel, params: BaseModel, timeout_s: float | None
) -> HandlerResult:
    result, usage = extract(rt, job_id, input_, params, timeout_s)
    return HandlerResult(result, usage)


def _moderate(
    rt: WorkerRuntime, job_id: str, input_: BaseModel, params: BaseModel, timeout_s: float | None
) -> HandlerResult:
    """Moderation with the request's policy: categories, thresholds and a custom model."""
    from workers.classifiers.policy import apply_policy

    assert isinstance(input_, TextInput)
    assert isinstance(params, ModerateParams)
    suite = rt.require_classifiers()
    if params.model is None:
        raw = suite.classify(TaskName.MODERATE, input_.text, timeout_s=timeout_s)
    else:
        raw = suite.classify(TaskName.MODERATE, input_.text, timeout_s=timeout_s, model=params.model)
    result = {**apply_policy(raw, params), "model": params.model}
    return HandlerResult(ModerationResult.model_validate(result).model_dump())


HANDLERS: dict[TaskName, Handler] = {
    TaskName.GENERATE: _generate,
    TaskName.SUMMARIZE: _summarize,
    TaskName.MODERATE: _moderate,
    TaskName.RISK: _classifier(RiskResult, TaskName.RISK),
    TaskName.SENTIMENT: _classifier(SentimentResult, TaskName.SENTIMENT),
    TaskName.EXTRACT: _extract,
    TaskName.ENTITIES: _classifier(EntitiesResult, TaskName.ENTITIES),
}
