"""The handlers of the generation tasks on the vLLM engine: `generate` and `summarize`."""

from __future__ import annotations

from shared.results import GenerateResult, SummarizeResult
from shared.schemas import GenerateInput, GenerateParams, SummarizeParams, TextInput
from workers.engines.base import GenerationRequest
from workers.extract import check_output
from workers.guardrails import fleet_moderator, guard_input, guard_output
from workers.handlers import HandlerResult
from workers.runtime import WorkerRuntime

__all__ = ["SUMMARY_SYSTEM_PROMPT", "generate", "summarize", "summary_messages"]

SUMMARY_SYSTEM_PROMPT = "You are a careful assistant. You write short, faithful summaries and add nothing."


def summary_messages(text: str) -> list[dict[str, str]]:
    """The chat prompt of a summary."""
    return [
        {"role": "system", "content": SUMMARY_SYSTEM_PROMPT},
        {
            "role": "user",
            "content": f"Summarize the following text in two or three sentences.\n\nText:\n{text}",
        },
    ]


def generate(
    rt: WorkerRuntime, job_id: str, input_: GenerateInput, params: GenerateParams, timeout_s: float | None
) -> HandlerResult:
    """A generation from a prompt or chat messages, with its guardrails and output constraint."""
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


def summarize(
    rt: WorkerRuntime, job_id: str, input_: TextInput, params: SummarizeParams, timeout_s: float | None
) -> HandlerResult:
    """A short summary, greedy decoding with a mild repetition penalty."""
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
