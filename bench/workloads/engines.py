"""`textfleet bench`: the bare engines against the fleet end to end, on one machine, same model, same inputs.

1. bare engine: vLLM generating N prompts at once with a fixed output length (min_tokens = max_tokens,
   ignore_eos) -> output tokens/s; the classifier in batched forward passes over M texts -> texts/s;
2. intake: single-job `POST /v1/jobs` (rate, latency p50/p99) and bulk `POST /v1/jobs/batch` (rate), on the
   API alone, before any worker runs, so intake is measured in isolation;
3. the fleet: the same N generation jobs and M moderation jobs submitted over HTTP, through Redis and a
   worker, results in the database, until all are terminal -> tokens/s, texts/s, queue-to-start p50/p99;
4. a sweep over offered concurrency (jobs in flight at once), bare and fleet, drawn as a PNG.

Writes bench.json, bench.md (the table) and throughput.png into the output directory.
"""

from __future__ import annotations

import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.loadgen import api_stack, purge, submit_at_rate, submit_bulk, submit_single, wait_terminal
from bench.report import BenchReport, percentile, render_table, write_outputs
from shared.constants import Queue, TaskName
from shared.db import Job
from shared.schemas import GenerateParams, JobStatus
from shared.settings import Settings
from workers.engines.base import GenerationRequest

__all__ = ["BenchConfig", "run_bench"]

log = structlog.get_logger(__name__)

PROMPTS = [
    "Write a short story about a lighthouse keeper.",
    "Explain how a bicycle works.",
    "List some facts about the moon.",
    "Describe a busy market in the morning.",
    "Give advice to a new gardener.",
    "Tell me about the history of paper.",
    "What makes a good cup of tea?",
    "Describe the sound of rain on a roof.",
]
TEXTS = [
    "I love this product, it works great!",
    "You are a worthless idiot and everyone hates you.",
    "The meeting has been moved to 3pm tomorrow.",
    "I'm going to find where you live and hurt you.",
    "Congratulations! You won a free cruise, click here to claim your prize now.",
    "Can you recommend a good book about gardening?",
    "This is the worst customer service I have ever experienced.",
    "Our quarterly report is attached for your review.",
]


@dataclass(frozen=True)
class BenchConfig:
    """What to measure. `quick` is the CI smoke mode: tiny counts, same code path."""

    generate_jobs: int = 256
    output_tokens: int = 64
    moderate_jobs: int = 2000
    intake_jobs: int = 2000
    intake_clients: int = 16
    #: open-loop offered rate (jobs/s) for the latency figures of single POSTs
    intake_rate: float = 500.0
    bulk_jobs: int = 10_000
    levels: tuple[int, ...] = (1, 4, 16, 64)
    out_dir: Path = Path("bench-results")

    @classmethod
    def quick(cls, out_dir: Path) -> BenchConfig:
        return cls(
            generate_jobs=8,
            output_tokens=8,
            moderate_jobs=64,
            intake_jobs=100,
            intake_clients=4,
            intake_rate=50.0,
            bulk_jobs=500,
            levels=(1, 4),
            out_dir=out_dir,
        )


def _prompt(i: int) -> str:
    return PROMPTS[i % len(PROMPTS)]


def _text(i: int) -> str:
    return f"{TEXTS[i % len(TEXTS)]} (#{i})"


# --- bare engines ----------------------------------------------------------------------------------


def bare_generation(settings: Settings, config: BenchConfig, progress: Progress) -> dict[str, Any]:
    """vLLM alone: `n` prompts at once for the headline, plus one wave per sweep level."""
    from workers.engines.vllm_engine import VLLMEngine

    params = GenerateParams(temperature=0.0, min_tokens=config.output_tokens, max_tokens=config.output_tokens)
    engine = VLLMEngine.from_settings(settings)
    try:

        def wave(count: int, label: str) -> float:
            bar = progress.add_task(f"bare vLLM: {label}", total=count)

            def one(i: int) -> int:
                request = GenerationRequest(
                    request_id=f"bench-{label}-{i}",
                    params=params,
                    prompt=_prompt(i),
                    max_tokens=config.output_tokens,
                    extra={"ignore_eos": True},
                )
                out = engine.generate(request)
                progress.advance(bar)
                return out.completion_tokens

            start = time.perf_counter()
            with ThreadPoolExecutor(max(1, count)) as pool:
                tokens = sum(pool.map(one, range(count)))
            return tokens / (time.perf_counter() - start)

        sweep = {level: wave(level, f"{level} at once") for level in config.levels}
        headline = wave(config.generate_jobs, f"{config.generate_jobs} prompts")
    finally:
        engine.close()
    capacity = engine.capacity
    return {
        "tokens_per_s": headline,
        "sweep": sweep,
        "max_num_seqs": capacity.max_num_seqs,
        "kv_cache_tokens": capacity.kv_cache_tokens,
    }


def bare_moderation(settings: Settings, config: BenchConfig, progress: Progress) -> dict[str, Any]:
    """The classifier alone: batched forward passes over `m` texts (and one-by-one, for reference)."""
    from workers.classifiers.suite import EncoderClassifierSuite

    suite = EncoderClassifierSuite.from_settings(settings)
    texts = [_text(i) for i in range(config.moderate_jobs)]
    try:
        bar = progress.add_task("bare classifier: batched", total=len(texts))
        size = settings.classify_batch_size
        start = time.perf_counter()
        for i in range(0, len(texts), size):
            suite.classify_batch(TaskName("moderate"), texts[i : i + size])
            progress.advance(bar, len(texts[i : i + size]))
        batched = len(texts) / (time.perf_counter() - start)

        single_n = min(100, len(texts))
        bar = progress.add_task("bare classifier: one by one", total=single_n)
        start = time.perf_counter()
        for text in texts[:single_n]:
            suite.classify_batch(TaskName("moderate"), [text])
            progress.advance(bar)
        single = single_n / (time.perf_counter() - start)

        sweep: dict[int, float] = {}
        for level in config.levels:
            chunk = texts[: max(level, 1) * 4]
            start = time.perf_counter()
            for i in range(0, len(chunk), level):
                suite.classify_batch(TaskName("moderate"), chunk[i : i + level])
            sweep[level] = len(chunk) / (time.perf_counter() - start)
    finally:
        suite.close()
    return {"texts_per_s": batched, "texts_per_s_one_by_one": single, "sweep": sweep}


# --- the fleet -------------------------------------------------------------------------------------


def _generate_body(i: int, tokens: int) -> dict[str, Any]:
    return {
        "task": "generate",
        "input": {"prompt": _prompt(i)},
        "params": {"max_tokens": tokens, "min_tokens": tokens, "temperature": 0.0},
    }


def _moderate_body(i: int) -> dict[str, Any]:
    return {"task": "moderate", "input": {"text": _text(i)}}


def fleet_stats(rows: list[Job]) -> dict[str, float]:
    """Throughput over the window first created -> last finished, and queue-to-start latency."""
    failed = [r for r in rows if r.status != JobStatus.SUCCEEDED.value]
    if failed:
        raise RuntimeError(f"{len(failed)} jobs did not succeed, e.g. {failed[0].id}: {failed[0].error}")
    first = min(r.created_at for r in rows)
    last = max(_finished(r) for r in rows)
    window = max((last - first).total_seconds(), 1e-6)
    waits = [(_started(r) - r.created_at).total_seconds() for r in rows]
    tokens = sum(r.completion_tokens or 0 for r in rows)
    return {
        "jobs": len(rows),
        "window_s": window,
        "jobs_per_s": len(rows) / window,
        "tokens_per_s": tokens / window,
        "queue_to_start_p50_s": percentile(waits, 50),
        "queue_to_start_p99_s": percentile(waits, 99),
    }


def _started(row: Job) -> datetime:
    assert row.started_at is not None
    return row.started_at


def _finished(row: Job) -> datetime:
    assert row.finished_at is not None
    return row.finished_at


def run_bench(settings: Settings, config: BenchConfig, console: Console) -> BenchReport:
    """Measure everything and write the results into `config.out_dir`."""
    report = BenchReport(
        config={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        machine={
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "classify_batch_size": settings.classify_batch_size,
        },
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        gen = bare_generation(settings, config, progress)
        report.machine["max_num_seqs"] = gen["max_num_seqs"]
        report.machine["kv_cache_tokens"] = gen["kv_cache_tokens"]
        mod = bare_moderation(settings, config, progress)
        report.bare = {
            "generate_tokens_per_s": gen["tokens_per_s"],
            "moderate_texts_per_s": mod["texts_per_s"],
            "moderate_texts_per_s_one_by_one": mod["texts_per_s_one_by_one"],
        }
        fleet_sweep: dict[str, dict[int, float]] = {"generate": {}, "moderate": {}}
        with api_stack(settings, console) as stack, httpx.Client(base_url=stack.url, timeout=120) as http:
            # Intake, on the API alone.
            bar = progress.add_task("intake: single POST", total=config.intake_jobs)
            _ids, latencies, wall = submit_single(
                http,
                [_moderate_body(i) for i in range(config.intake_jobs)],
                config.intake_clients,
                on_done=lambda: progress.advance(bar),
            )
            bar = progress.add_task(
                f"intake: single POST at {config.intake_rate:g}/s", total=config.intake_jobs
            )
            paced, paced_rate = submit_at_rate(
                http,
                [_moderate_body(i) for i in range(config.intake_jobs)],
                config.intake_rate,
                on_done=lambda: progress.advance(bar),
            )
            bulk_bodies = [_moderate_body(i) for i in range(config.bulk_jobs)]
            start = time.perf_counter()
            submit_bulk(http, bulk_bodies)
            bulk_wall = time.perf_counter() - start
            report.intake = {
                "single_jobs_per_s": config.intake_jobs / wall,
                "single_p50_ms": percentile(latencies, 50) * 1000,
                "single_p99_ms": percentile(latencies, 99) * 1000,
                "paced_offered_jobs_per_s": config.intake_rate,
                "paced_jobs_per_s": paced_rate,
                "paced_p50_ms": percentile(paced, 50) * 1000,
                "paced_p99_ms": percentile(paced, 99) * 1000,
                "bulk_jobs_per_s": config.bulk_jobs / bulk_wall,
            }
            purge(stack.database_url, stack.redis_url)

            stack.add_workers((Queue.GENERATE, Queue.CLASSIFY))
            timeout = 3600.0
            for level in config.levels:
                ids = submit_bulk(http, [_generate_body(i, config.output_tokens) for i in range(level)])
                rows = wait_terminal(
                    stack.database_url, ids, progress, f"fleet generate: {level} at once", timeout
                )
                fleet_sweep["generate"][level] = fleet_stats(rows)["tokens_per_s"]
                ids = submit_bulk(http, [_moderate_body(i) for i in range(max(level, 1) * 4)])
                rows = wait_terminal(
                    stack.database_url, ids, progress, f"fleet moderate: {level} at once", timeout
                )
                fleet_sweep["moderate"][level] = fleet_stats(rows)["jobs_per_s"]

            ids = submit_bulk(
                http, [_generate_body(i, config.output_tokens) for i in range(config.generate_jobs)]
            )
            gen_rows = wait_terminal(stack.database_url, ids, progress, "fleet: generate jobs", timeout)
            gen_stats = fleet_stats(gen_rows)
            ids = submit_bulk(http, [_moderate_body(i) for i in range(config.moderate_jobs)])
            mod_rows = wait_terminal(stack.database_url, ids, progress, "fleet: moderate jobs", timeout)
            mod_stats = fleet_stats(mod_rows)
    report.fleet = {
        "generate_tokens_per_s": gen_stats["tokens_per_s"],
        "generate_queue_to_start_p50_s": gen_stats["queue_to_start_p50_s"],
        "generate_queue_to_start_p99_s": gen_stats["queue_to_start_p99_s"],
        "moderate_texts_per_s": mod_stats["jobs_per_s"],
        "moderate_queue_to_start_p50_s": mod_stats["queue_to_start_p50_s"],
        "moderate_queue_to_start_p99_s": mod_stats["queue_to_start_p99_s"],
    }
    report.ratios = {
        "generate": report.fleet["generate_tokens_per_s"] / report.bare["generate_tokens_per_s"],
        "moderate": report.fleet["moderate_texts_per_s"] / report.bare["moderate_texts_per_s"],
    }
    report.sweep = [
        {
            "concurrency": level,
            "bare_generate_tokens_per_s": gen["sweep"][level],
            "fleet_generate_tokens_per_s": fleet_sweep["generate"][level],
            "bare_moderate_texts_per_s": mod["sweep"][level],
            "fleet_moderate_texts_per_s": fleet_sweep["moderate"][level],
        }
        for level in config.levels
    ]
    write_outputs(report, config.out_dir)
    console.print(render_table(report))
    return report
