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

import json
import os
import platform
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import redis
import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select, update

from shared.constants import Queue, TaskName
from shared.db import Job, session_scope
from shared.schemas import TERMINAL_STATUSES, GenerateParams, JobStatus
from shared.settings import Settings
from workers.engines.base import GenerationRequest

__all__ = ["BenchConfig", "BenchReport", "run_bench"]

log = structlog.get_logger(__name__)

TERMINAL = [s.value for s in TERMINAL_STATUSES]
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


@dataclass
class BenchReport:
    """Everything measured; serialised as bench.json."""

    config: dict[str, Any]
    machine: dict[str, Any]
    bare: dict[str, float] = field(default_factory=dict)
    fleet: dict[str, float] = field(default_factory=dict)
    intake: dict[str, float] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    sweep: list[dict[str, float]] = field(default_factory=list)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


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
    return {"tokens_per_s": headline, "sweep": sweep}


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


def submit_bulk(http: httpx.Client, bodies: list[dict[str, Any]], chunk: int = 10_000) -> list[str]:
    """Submit through `POST /v1/jobs/batch`, in chunks; returns the ids in order."""
    ids: list[str] = []
    for i in range(0, len(bodies), chunk):
        response = http.post("/v1/jobs/batch", json={"jobs": bodies[i : i + chunk]})
        response.raise_for_status()
        payload = response.json()
        ids.extend(item["id"] for item in payload["items"])
    return ids


def submit_single(
    http: httpx.Client, bodies: list[dict[str, Any]], clients: int, on_done: Callable[[], None] | None = None
) -> tuple[list[str], list[float], float]:
    """Submit one request per job from `clients` threads; returns ids, latencies (s) and wall time."""
    latencies: list[float] = []
    ids: list[str] = []
    lock = threading.Lock()

    def one(body: dict[str, Any]) -> None:
        start = time.perf_counter()
        response = http.post("/v1/jobs", json=body)
        elapsed = time.perf_counter() - start
        response.raise_for_status()
        with lock:
            latencies.append(elapsed)
            ids.append(response.json()["id"])
        if on_done is not None:
            on_done()

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, bodies))
    return ids, latencies, time.perf_counter() - start


def submit_at_rate(
    http: httpx.Client, bodies: list[dict[str, Any]], rate: float, on_done: Callable[[], None] | None = None
) -> tuple[list[float], float]:
    """Open-loop load: request i is due at start + i/rate, whatever earlier ones are doing. Latency is
    measured from the due time, so time spent waiting for a free client counts (no coordinated
    omission). Returns the latencies (s) and the achieved rate (jobs/s)."""
    latencies: list[float] = []
    lock = threading.Lock()
    local = threading.local()  # one client per thread: a pool shared by 64 threads races on sockets
    clients: list[httpx.Client] = []
    start = time.perf_counter() + 0.5

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=http.base_url, timeout=http.timeout)
            with lock:
                clients.append(local.client)
        return local.client  # type: ignore[no-any-return]

    def one(i: int) -> None:
        due = start + i / rate
        mine = client()
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        response = mine.post("/v1/jobs", json=bodies[i])
        done = time.perf_counter()
        response.raise_for_status()
        with lock:
            latencies.append(done - due)
        if on_done is not None:
            on_done()

    try:
        with ThreadPoolExecutor(64) as pool:
            list(pool.map(one, range(len(bodies))))
    finally:
        for c in clients:
            c.close()
    return latencies, len(bodies) / (time.perf_counter() - start)


def wait_terminal(
    database_url: str, ids: list[str], progress: Progress, label: str, timeout: float
) -> list[Job]:
    """Poll the database until every job in `ids` is terminal; returns their rows."""
    bar = progress.add_task(label, total=len(ids))
    low, high = min(ids), max(ids)
    deadline = time.monotonic() + timeout
    while True:
        with session_scope(database_url) as session:
            done = session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.id >= low, Job.id <= high, Job.status.in_(TERMINAL))
            )
        progress.update(bar, completed=done or 0)
        if (done or 0) >= len(ids):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{label}: only {done}/{len(ids)} jobs finished in {timeout:.0f}s")
        time.sleep(0.25)
    wanted = set(ids)
    with session_scope(database_url) as session:
        rows = session.scalars(select(Job).where(Job.id >= low, Job.id <= high)).all()
    return [row for row in rows if row.id in wanted]


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


def purge(database_url: str, redis_url: str) -> None:
    """Cancel every queued job and empty the queues (intake jobs must not be run)."""
    with session_scope(database_url) as session:
        session.execute(
            update(Job)
            .where(Job.status == JobStatus.QUEUED.value)
            .values(status=JobStatus.CANCELED.value, error={"code": "canceled", "message": "bench intake"})
        )
    client = redis.Redis.from_url(redis_url)
    keys = [key for queue in Queue for key in client.scan_iter(match=f"{queue.value}*")]
    keys += list(client.scan_iter(match="textfleet:outstanding:*"))
    if keys:
        client.delete(*keys)
    client.close()


@contextmanager
def _stack(settings: Settings, console: Console) -> Iterator[Any]:
    from workers.dev import DevStack, free_port

    with DevStack(settings, port=free_port(), queues=(), console=console) as stack:
        yield stack


def run_bench(settings: Settings, config: BenchConfig, console: Console) -> BenchReport:
    """Measure everything and write the results into `config.out_dir`."""
    report = BenchReport(
        config={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        machine={
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "max_num_seqs": settings.max_num_seqs,
            "classify_batch_size": settings.classify_batch_size,
        },
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        gen = bare_generation(settings, config, progress)
        mod = bare_moderation(settings, config, progress)
        report.bare = {
            "generate_tokens_per_s": gen["tokens_per_s"],
            "moderate_texts_per_s": mod["texts_per_s"],
            "moderate_texts_per_s_one_by_one": mod["texts_per_s_one_by_one"],
        }
        fleet_sweep: dict[str, dict[int, float]] = {"generate": {}, "moderate": {}}
        with _stack(settings, console) as stack, httpx.Client(base_url=stack.url, timeout=120) as http:
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


# --- outputs ---------------------------------------------------------------------------------------


def table_rows(report: BenchReport) -> list[tuple[str, str, str, str]]:
    """(metric, bare engine, fleet, fleet / bare) rows of the summary table."""
    b, f, i, r = report.bare, report.fleet, report.intake, report.ratios
    return [
        (
            "generation, output tokens/s",
            f"{b['generate_tokens_per_s']:.1f}",
            f"{f['generate_tokens_per_s']:.1f}",
            f"{r['generate']:.2f}",
        ),
        (
            "moderation, texts/s",
            f"{b['moderate_texts_per_s']:.1f}",
            f"{f['moderate_texts_per_s']:.1f}",
            f"{r['moderate']:.2f}",
        ),
        ("moderation one by one, texts/s", f"{b['moderate_texts_per_s_one_by_one']:.1f}", "", ""),
        (
            "generation queue-to-start p50 / p99, s",
            "",
            f"{f['generate_queue_to_start_p50_s']:.2f} / {f['generate_queue_to_start_p99_s']:.2f}",
            "",
        ),
        (
            "moderation queue-to-start p50 / p99, s",
            "",
            f"{f['moderate_queue_to_start_p50_s']:.2f} / {f['moderate_queue_to_start_p99_s']:.2f}",
            "",
        ),
        (
            f"single POST /v1/jobs, max jobs/s ({report.config['intake_clients']} clients)",
            "",
            f"{i['single_jobs_per_s']:.0f}",
            "",
        ),
        (
            "  latency p50 / p99 at that load, ms",
            "",
            f"{i['single_p50_ms']:.1f} / {i['single_p99_ms']:.1f}",
            "",
        ),
        (
            f"single POST at a steady {i['paced_offered_jobs_per_s']:g} jobs/s: achieved jobs/s",
            "",
            f"{i['paced_jobs_per_s']:.0f}",
            "",
        ),
        (
            "  latency p50 / p99 at that rate, ms",
            "",
            f"{i['paced_p50_ms']:.1f} / {i['paced_p99_ms']:.1f}",
            "",
        ),
        ("bulk POST /v1/jobs/batch, jobs/s", "", f"{i['bulk_jobs_per_s']:.0f}", ""),
    ]


def render_table(report: BenchReport) -> Table:
    table = Table(title="textfleet bench")
    for column in ("metric", "bare engine", "fleet (end to end)", "fleet / bare"):
        table.add_column(column)
    for row in table_rows(report):
        table.add_row(*row)
    return table


def markdown_table(report: BenchReport) -> str:
    lines = ["| metric | bare engine | fleet (end to end) | fleet / bare |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in table_rows(report)]
    return "\n".join(lines) + "\n"


def write_outputs(report: BenchReport, out_dir: Path) -> None:
    """bench.json, bench.md and throughput.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(asdict(report), indent=2))
    (out_dir / "bench.md").write_text(markdown_table(report))
    plot(report, out_dir / "throughput.png")


def plot(report: BenchReport, path: Path) -> None:
    """Throughput against offered concurrency, bare engine and fleet, for generation and moderation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [row["concurrency"] for row in report.sweep]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = [
        ("generation", "output tokens/s", "bare_generate_tokens_per_s", "fleet_generate_tokens_per_s"),
        ("moderation", "texts/s", "bare_moderate_texts_per_s", "fleet_moderate_texts_per_s"),
    ]
    for ax, (title, unit, bare_key, fleet_key) in zip(axes, panels, strict=True):
        ax.plot(levels, [row[bare_key] for row in report.sweep], "o-", label="bare engine")
        ax.plot(
            levels,
            [row[fleet_key] for row in report.sweep],
            "s--",
            label="fleet (HTTP → Redis → worker → DB)",
        )
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(level) for level in levels])
        ax.set_xlabel("offered concurrency (jobs in flight)")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"textfleet bench — {report.machine['cpus']} CPUs, {report.machine['platform'][:40]}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
