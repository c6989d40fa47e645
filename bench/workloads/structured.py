"""`textfleet bench --scenario structured`: constrained decoding against unconstrained generation
of the same length.

On the bare vLLM engine (the cost of structured output is the engine's, not the fleet's):

1. for each case (`extract` with the default schema, `generate` with a json_schema, with a regex), N
   requests at once under the constraint -> output tokens/s, and each request's output length;
2. the same N prompts unconstrained, each forced to that same length (min_tokens = max_tokens,
   ignore_eos) -> output tokens/s. ratio = constrained / unconstrained (the goal is >= 0.8);
3. the grammar cache: one request under a schema never seen (compiled) against the same schema again
   (vLLM's xgrammar compiler caches grammars by the schema's JSON text) -> latency of each. The
   throughput waves of step 1 run after their grammar is compiled (steady state).

Writes structured.json and structured.md into the output directory.
"""

from __future__ import annotations

import json
import platform
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from shared.constraints import OutputConstraint, output_problem
from shared.schemas import GenerateParams
from shared.settings import Settings
from shared.structured import default_extract_schema
from workers.engines.base import GenerationEngine, GenerationOutput, GenerationRequest
from workers.extract import DEFAULT_INSTRUCTIONS, extract_messages

__all__ = ["StructuredBenchConfig", "run_structured_bench"]

TEXTS = [
    "Tim Cook, the CEO of Apple, opened a new office in Munich on 3 May 2024.",
    "Marie Curie and Pierre Curie worked at the University of Paris.",
    "Amazon paid $13.7 billion for Whole Foods in 2017, said Jeff Bezos in Seattle.",
    "The United Nations met in Geneva; Antonio Guterres spoke about climate finance.",
]
PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 40},
        "organization": {"type": "string", "minLength": 1, "maxLength": 40},
        "city": {"type": "string", "minLength": 1, "maxLength": 30},
        "year": {"anyOf": [{"type": "integer", "minimum": 1800, "maximum": 2100}, {"type": "null"}]},
        "sentiment": {"enum": ["positive", "neutral", "negative"]},
        "keywords": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 4},
    },
    "required": ["name", "organization", "city", "year", "sentiment", "keywords"],
    "additionalProperties": False,
}
CODE_REGEX = r"[A-Z]{2,4}(-[0-9]{2,4}){2,6}"


@dataclass(frozen=True)
class StructuredBenchConfig:
    """What to measure. `quick` is the CI smoke mode: tiny counts, same code path."""

    requests: int = 64
    out_dir: Path = Path("bench-results")

    @classmethod
    def quick(cls, out_dir: Path) -> StructuredBenchConfig:
        return cls(requests=4, out_dir=out_dir)


@dataclass(frozen=True)
class _Case:
    name: str
    constraint: OutputConstraint
    max_tokens: int
    request: Callable[[int, str, int, OutputConstraint | None, dict[str, object]], GenerationRequest]


def _extract_request(
    i: int, rid: str, max_tokens: int, constraint: OutputConstraint | None, extra: dict[str, object]
) -> GenerationRequest:
    text = f"{TEXTS[i % len(TEXTS)]} (report {i})"
    params = GenerateParams(temperature=0.0, min_tokens=max_tokens if constraint is None else 0)
    return GenerationRequest(
        request_id=rid,
        params=params,
        messages=extract_messages(text, default_extract_schema(), DEFAULT_INSTRUCTIONS),
        max_tokens=max_tokens,
        constraint=constraint,
        extra=extra,
    )


def _prompt_request(
    i: int, rid: str, max_tokens: int, constraint: OutputConstraint | None, extra: dict[str, object]
) -> GenerationRequest:
    prompt = f"{TEXTS[i % len(TEXTS)]}\nThe facts above as JSON:"
    params = GenerateParams(temperature=0.0, min_tokens=max_tokens if constraint is None else 0)
    return GenerationRequest(
        request_id=rid,
        params=params,
        prompt=prompt,
        max_tokens=max_tokens,
        constraint=constraint,
        extra=extra,
    )


CASES = [
    _Case(
        "extract (default schema)",
        OutputConstraint.json_schema(default_extract_schema()),
        1024,
        _extract_request,
    ),
    _Case("generate json_schema", OutputConstraint.json_schema(PERSON_SCHEMA), 256, _prompt_request),
    _Case("generate regex", OutputConstraint("regex", CODE_REGEX), 64, _prompt_request),
]


def _wave(
    engine: GenerationEngine, requests: list[GenerationRequest]
) -> tuple[list[GenerationOutput], float]:
    start = time.perf_counter()
    with ThreadPoolExecutor(max(1, len(requests))) as pool:
        outs = list(pool.map(lambda r: engine.generate(r, timeout_s=1800), requests))
    return outs, time.perf_counter() - start


def measure_case(engine: GenerationEngine, case: _Case, n: int) -> dict[str, float]:
    """Constrained and same-length unconstrained throughput of one case, N requests at once.

    The grammar is compiled before the waves (steady state; the one-time compile is measured by
    measure_grammar_cache). Waves run constrained, unconstrained, unconstrained, constrained (the same
    N prompts; greedy, so both constrained waves produce the same lengths), so a machine that slows
    down or speeds up during the run biases neither side."""
    tag = uuid.uuid4().hex[:8]

    def constrained(wave: int) -> list[GenerationRequest]:
        return [
            case.request(i, f"sc-{tag}-{wave}-{i}", case.max_tokens, case.constraint, {}) for i in range(n)
        ]

    def free(wave: int, lengths: list[int]) -> list[GenerationRequest]:
        extra: dict[str, object] = {"ignore_eos": True}
        return [case.request(i, f"su-{tag}-{wave}-{i}", lengths[i], None, extra) for i in range(n)]

    # Compile (and cache) the grammar first: the steady state is measured here, the one-time compile
    # in measure_grammar_cache.
    engine.generate(case.request(0, f"sw-{tag}", 1, case.constraint, {}), timeout_s=600)
    first, took_c1 = _wave(engine, constrained(1))
    lengths = [max(1, o.completion_tokens) for o in first]
    free1, took_u1 = _wave(engine, free(1, lengths))
    free2, took_u2 = _wave(engine, free(2, lengths))
    second, took_c2 = _wave(engine, constrained(2))
    outs = first + second
    valid = sum(output_problem(case.constraint, o.text, o.finish_reason) is None for o in outs)
    tokens_c = sum(o.completion_tokens for o in outs)
    tokens_u = sum(o.completion_tokens for o in free1 + free2)
    constrained_rate = tokens_c / (took_c1 + took_c2)
    free_rate = tokens_u / (took_u1 + took_u2)
    return {
        "requests": len(outs),
        "valid": valid,
        "mean_output_tokens": tokens_c / len(outs),
        "constrained_tokens_per_s": constrained_rate,
        "unconstrained_tokens_per_s": free_rate,
        "ratio": constrained_rate / free_rate,
    }


def measure_grammar_cache(engine: GenerationEngine) -> dict[str, float]:
    """Latency of one short request under a schema never compiled, then under the same schema again."""
    schema = {**PERSON_SCHEMA, "title": f"bench-{uuid.uuid4().hex}"}  # a new text: a cache miss
    constraint = OutputConstraint.json_schema(schema)

    def once(label: str) -> float:
        request = _prompt_request(0, f"cache-{label}-{uuid.uuid4().hex[:8]}", 8, constraint, {})
        start = time.perf_counter()
        engine.generate(request, timeout_s=600)
        return time.perf_counter() - start

    free = _prompt_request(0, f"cache-free-{uuid.uuid4().hex[:8]}", 8, None, {"ignore_eos": True})
    start = time.perf_counter()
    engine.generate(free, timeout_s=600)
    unconstrained = time.perf_counter() - start
    cold = once("cold")
    warm = min(once("warm"), once("warm2"))
    return {"unconstrained_s": unconstrained, "new_schema_s": cold, "cached_schema_s": warm}


def run_structured_bench(
    settings: Settings, config: StructuredBenchConfig, console: Console
) -> dict[str, Any]:
    """Start the engine, measure every case and the grammar cache, write structured.json / .md."""
    from workers.engines.vllm_engine import VLLMEngine

    engine = VLLMEngine.from_settings(settings)
    try:
        cache = measure_grammar_cache(engine)
        cases: dict[str, dict[str, float]] = {}
        for case in CASES:
            console.print(f"structured bench: {case.name}, {config.requests} requests at once")
            cases[case.name] = measure_case(engine, case, config.requests)
    finally:
        engine.close()
    report = {
        "config": {**asdict(config), "out_dir": str(config.out_dir)},
        "machine": {
            "platform": platform.platform(),
            "model": settings.generation_model_path.rsplit("/", 1)[-1],
        },
        "cases": cases,
        "grammar_cache": cache,
    }
    config.out_dir.mkdir(parents=True, exist_ok=True)
    (config.out_dir / "structured.json").write_text(json.dumps(report, indent=2) + "\n")
    (config.out_dir / "structured.md").write_text(markdown_table(report))
    table = Table(title="structured output vs unconstrained (same lengths, bare engine)")
    for column in ("case", "valid", "tokens/out", "constrained tok/s", "free tok/s", "ratio"):
        table.add_column(column)
    for name, row in cases.items():
        table.add_row(
            name,
            f"{row['valid']:.0f}/{row['requests']:.0f}",
            f"{row['mean_output_tokens']:.0f}",
            f"{row['constrained_tokens_per_s']:.1f}",
            f"{row['unconstrained_tokens_per_s']:.1f}",
            f"{row['ratio']:.2f}",
        )
    console.print(table)
    console.print(
        f"grammar cache: new schema {cache['new_schema_s']:.2f}s, cached {cache['cached_schema_s']:.2f}s, "
        f"unconstrained {cache['unconstrained_s']:.2f}s (8 tokens)"
    )
    return report


def markdown_table(report: dict[str, Any]) -> str:
    """The README table of a report."""
    lines = [
        "| case | valid | mean output tokens | constrained tok/s | unconstrained tok/s | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in report["cases"].items():
        lines.append(
            f"| {name} | {row['valid']:.0f}/{row['requests']:.0f} | {row['mean_output_tokens']:.0f} | "
            f"{row['constrained_tokens_per_s']:.1f} | {row['unconstrained_tokens_per_s']:.1f} | "
            f"{row['ratio']:.2f} |"
        )
    cache = report["grammar_cache"]
    lines.append("")
    lines.append(
        f"Grammar cache (one 8-token request): new schema {cache['new_schema_s']:.2f} s, same schema again "
        f"{cache['cached_schema_s']:.2f} s, unconstrained {cache['unconstrained_s']:.2f} s."
    )
    return "\n".join(lines) + "\n"
