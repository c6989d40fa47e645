"""Constrained generation: the `extract` task, and the output check shared with `generate`'s response_format.

Decoding is constrained by the engine (vLLM + xgrammar), so the output should always satisfy its
constraint; the worker checks again and fails the job with `invalid_output` when it does not (for
instance when max_tokens cut the JSON off before it closed).
"""

from __future__ import annotations

from typing import Any

from shared.constraints import OutputConstraint, output_problem, parse_json_output
from shared.errors import InvalidOutputError
from shared.schemas import ExtractParams, ExtractResult, GenerateParams, TextInput
from shared.structured import default_extract_schema, schema_json
from workers.engines.base import GenerationOutput, GenerationRequest
from workers.handlers import HandlerResult
from workers.runtime import WorkerRuntime

__all__ = ["EXTRACT_SYSTEM_PROMPT", "check_output", "extract_messages", "handle"]

EXTRACT_SYSTEM_PROMPT = (
    "You extract information from a text. Answer with JSON only, matching this JSON Schema:\n{schema}"
)
#: Instructions when the job gives none and uses the default schema.
DEFAULT_INSTRUCTIONS = (
    "List the named entities of the text (people, organizations, locations, dates, amounts of money, "
    "products, events) with their type, and the relations between them as (head, relation, tail)."
)


def extract_messages(text: str, schema: dict[str, Any], instructions: str | None) -> list[dict[str, str]]:
    """The chat prompt of an extraction: the schema and instructions, then the text."""
    system = EXTRACT_SYSTEM_PROMPT.format(schema=schema_json(schema))
    if instructions:
        system = f"{system}\n\n{instructions}"
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


def check_output(constraint: OutputConstraint, out: GenerationOutput, max_tokens: int) -> None:
    """Raise InvalidOutputError (code `invalid_output`) unless `out` satisfies `constraint`."""
    problem = output_problem(constraint, out.text, out.finish_reason)
    if problem is None:
        return
    if out.finish_reason == "length":
        problem = f"{problem} (max_tokens={max_tokens}, {out.completion_tokens} tokens generated)"
    raise InvalidOutputError(problem)


def handle(
    rt: WorkerRuntime, job_id: str, input_: TextInput, params: ExtractParams, timeout_s: float | None
) -> HandlerResult:
    """Run one `extract` job: constrained decoding, then the check."""
    schema = params.schema_ if params.schema_ is not None else default_extract_schema()
    instructions = params.instructions or (DEFAULT_INSTRUCTIONS if params.schema_ is None else None)
    constraint = OutputConstraint.json_schema(schema)
    max_tokens = params.max_tokens or rt.settings.extract_max_tokens
    request = GenerationRequest(
        request_id=job_id,
        params=GenerateParams(temperature=params.temperature, top_p=params.top_p, seed=params.seed),
        messages=extract_messages(input_.text, schema, instructions),
        max_tokens=max_tokens,
        constraint=constraint,
    )
    out = rt.require_generation().generate(request, timeout_s=timeout_s)
    check_output(constraint, out, max_tokens)
    usage = {"prompt_tokens": out.prompt_tokens, "completion_tokens": out.completion_tokens}
    result = ExtractResult.model_validate({"data": parse_json_output(out.text), "usage": usage})
    return HandlerResult(result.model_dump(mode="json"), usage)
