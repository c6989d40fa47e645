"""`textfleet bench --scenario overhead`: the fleet's own cost per job, with a model that costs nothing.

On a GPU the model stops being the bottleneck, and what one worker process can push through the
queue and the database per second becomes the ceiling of the whole product. This scenario measures
that ceiling:

1. the bench's stack: the API, Redis (embedded unless TEXTFLEET_REDIS_URL is set) and the database
   (TEXTFLEET_DATABASE_URL: PostgreSQL for the figures that count; SQLite when unset), plus one
   classify worker started with `--instant-classifiers` (`workers.classifiers.instant`: a real worker
   process, real Celery, claim, handler, result validation, finish and announcement; every answer
   fixed and instant, still gathered by the classifier's micro-batcher);
2. a warm-up (connections, imports), not counted;
3. `bulk`: `jobs` moderate jobs in `POST /v1/jobs/batch` requests; `single`: as many, one
   `POST /v1/jobs` each from `clients` threads; each phase waits until every job is terminal.

Per phase: jobs/s end to end (first created -> last finished), jobs/s of the worker alone (first
started -> last finished), and the CPU time each process spent (API, worker, Redis when embedded,
the PostgreSQL backends of the bench's database when the server is local, and this process, the load
generator), in microseconds per job. With `profile`, py-spy records the API and the worker during
each phase and their top entries are written as `profile-<phase>-<process>.txt` (sampling perturbs
the figures of that run: measure without it).

Writes `overhead.json` and `overhead.md` into the output directory and prints the table.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.engine import make_url

from bench.cpu import DATABASE, CpuMeter
from bench.loadgen import api_stack, client_headers, submit_bulk, submit_single, wait_terminal
from bench.profiles import Profiler
from bench.report import percentile
from shared.constants import Queue
from shared.db import Job
from shared.schemas import JobStatus
from shared.settings import Settings

__all__ = ["OverheadConfig", "OverheadReport", "phase_stats", "run_overhead"]

#: What one GPU encoder scores per second (MiniLM-class, short texts; issue 10's order of magnitude):
#: the report says how many worker processes it takes to keep one busy.
GPU_ENCODER_TEXTS_PER_S = 10_000.0
#: Processes whose CPU time a phase reports, besides the database's backends and the load generator.
_MEASURED = ("api", "worker", "redis")
_LOADGEN = "load generator"
_TEXTS = (
    "The meeting has been moved to 3pm tomorrow.",
    "Can you recommend a good book about gardening?",
    "This is the worst customer service I have ever experienced.",
    "Our quarterly report is attached for your review.",
)


@dataclass(frozen=True)
class OverheadConfig:
    """The workload. `quick` is the CI smoke mode: tiny counts, same code path."""

    jobs: int = 2000
    clients: int = 16
    warmup_jobs: int = 200
    profile: bool = False
    #: py-spy samples per second (with `profile`)
    profile_rate: int = 100
    timeout_s: float = 600.0
    out_dir: Path = Path("bench-results")

    @classmethod
    def quick(cls, out_dir: Path) -> OverheadConfig:
        return cls(jobs=100, clients=4, warmup_jobs=20, out_dir=out_dir)


@dataclass
class OverheadReport:
    """Everything measured; serialised as overhead.json."""

    config: dict[str, Any]
    machine: dict[str, Any]
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    profiles: dict[str, str] = field(default_factory=dict)


def _body(i: int) -> dict[str, Any]:
    return {"task": "moderate", "input": {"text": f"{_TEXTS[i % len(_TEXTS)]} (#{i})"}}


def phase_stats(rows: list[Job], cpu_s: dict[str, float | None]) -> dict[str, Any]:
    """Rates of one phase from its jobs' timestamps, and its CPU time per job (µs) per process."""
    failed = [r for r in rows if r.status != JobStatus.SUCCEEDED.value]
    if failed:
        raise RuntimeError(f"{len(failed)} jobs did not succeed, e.g. {failed[0].id}: {failed[0].error}")
    if not rows:
        raise ValueError("a phase without jobs")
    created = min(r.created_at for r in rows)
    started = min(r.started_at for r in rows if r.started_at is not None)
    finished = max(r.finished_at for r in rows if r.finished_at is not None)
    end_to_end = max((finished - created).total_seconds(), 1e-6)
    worker = max((finished - started).total_seconds(), 1e-6)
    jobs = len(rows)
    per_job = {name: None if s is None else s / jobs * 1e6 for name, s in cpu_s.items()}
    fleet = [per_job[name] for name in ("api", "worker") if per_job.get(name) is not None]
    waits = [(r.started_at - r.created_at).total_seconds() for r in rows if r.started_at is not None]
    worker_rate = jobs / worker
    worker_us = per_job.get("worker")
    return {
        "jobs": jobs,
        "end_to_end_s": end_to_end,
        "jobs_per_s": jobs / end_to_end,
        "worker_jobs_per_s": worker_rate,
        "queue_to_start_p50_ms": percentile(waits, 50) * 1000,
        "queue_to_start_p99_ms": percentile(waits, 99) * 1000,
        "cpu_s": cpu_s,
        "cpu_us_per_job": per_job,
        "fleet_cpu_us_per_job": sum(v for v in fleet if v is not None),
        # what the worker process would sustain on a core of its own (robust to a shared machine)
        "worker_jobs_per_cpu_s": 1e6 / worker_us if worker_us else None,
        "workers_per_gpu_encoder": GPU_ENCODER_TEXTS_PER_S / worker_rate,
    }


def run_overhead(settings: Settings, config: OverheadConfig, console: Console) -> OverheadReport:
    """Run the scenario on the bench's stack and write `overhead.json` and `overhead.md`."""
    report = OverheadReport(
        config={k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        machine={
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "classify_concurrency": settings.classify_concurrency,
            "classify_batch_size": settings.classify_batch_size,
        },
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with (
        Progress(*columns, console=console) as progress,
        api_stack(settings, console) as stack,
        httpx.Client(
            base_url=stack.url, timeout=120, headers=client_headers(settings, stack.database_url)
        ) as http,
    ):
        database = make_url(stack.database_url).get_backend_name()
        report.machine["auth"] = "Authorization" in http.headers
        report.machine["database"] = database
        stack.add_workers((Queue.CLASSIFY,), args=("--instant-classifiers",))
        children = {"api": "api", "worker": f"worker-{Queue.CLASSIFY.value}", "redis": "redis"}
        pids = {name: stack.processes[key].pid for name, key in children.items() if key in stack.processes}
        pids[_LOADGEN] = os.getpid()
        database_url = stack.database_url if database == "postgresql" else None

        def wait(ids: list[str], label: str) -> list[Job]:
            return wait_terminal(stack.database_url, ids, progress, label, config.timeout_s)

        wait(submit_bulk(http, [_body(i) for i in range(config.warmup_jobs)]), "warm-up")

        def bulk() -> list[str]:
            return submit_bulk(http, [_body(i) for i in range(config.jobs)])

        def single() -> list[str]:
            bar = progress.add_task(f"single POST ({config.clients} clients)", total=config.jobs)
            ids, _latencies, _wall = submit_single(
                http,
                [_body(i) for i in range(config.jobs)],
                config.clients,
                on_done=lambda: progress.advance(bar),
            )
            return ids

        phases: dict[str, Callable[[], list[str]]] = {"bulk": bulk, "single": single}
        for phase, submit in phases.items():
            meter = CpuMeter(pids, database_url)
            profiled = {name: pid for name, pid in pids.items() if name in ("api", "worker")}
            profiler: AbstractContextManager[Any] = (
                Profiler(profiled, config.out_dir, f"profile-{phase}", rate=config.profile_rate)
                if config.profile
                else nullcontext()
            )
            with profiler as running:
                meter.start()
                rows = wait(submit(), f"{phase}: jobs terminal")
                cpu = meter.stop()
            report.phases[phase] = phase_stats(rows, cpu)
            if running is not None:
                report.profiles.update(
                    {f"{phase}/{name}": str(path) for name, path in running.summaries.items()}
                )
    write_outputs(report, config.out_dir)
    console.print(render_table(report))
    return report


def _rows(report: OverheadReport) -> Iterator[tuple[str, ...]]:
    phases = report.phases
    names = list(phases)

    def each(fmt: Callable[[dict[str, Any]], str]) -> tuple[str, ...]:
        return tuple(fmt(phases[name]) for name in names)

    yield ("jobs", *each(lambda p: f"{p['jobs']}"))
    yield ("jobs/s end to end (created -> finished)", *each(lambda p: f"{p['jobs_per_s']:.0f}"))
    yield (
        "jobs/s of the worker process (started -> finished)",
        *each(lambda p: f"{p['worker_jobs_per_s']:.0f}"),
    )
    yield (
        "queue-to-start p50 / p99, ms",
        *each(lambda p: f"{p['queue_to_start_p50_ms']:.0f} / {p['queue_to_start_p99_ms']:.0f}"),
    )
    yield (
        "jobs per CPU-second of the worker (what a core of its own sustains)",
        *each(lambda p: _us(p.get("worker_jobs_per_cpu_s"))),
    )
    yield ("fleet CPU per job (API + worker), µs", *each(lambda p: f"{p['fleet_cpu_us_per_job']:.0f}"))
    for name in (*_MEASURED, DATABASE, _LOADGEN):
        values = [phases[phase]["cpu_us_per_job"].get(name, _ABSENT) for phase in names]
        if any(value is not _ABSENT for value in values):
            yield (f"  CPU per job: {name}, µs", *(_us(value) for value in values))
    yield (
        f"worker processes to feed one GPU encoder at {GPU_ENCODER_TEXTS_PER_S:,.0f} texts/s",
        *each(lambda p: f"{p['workers_per_gpu_encoder']:.1f}"),
    )


_ABSENT = object()


def _us(value: object) -> str:
    return f"{value:.0f}" if isinstance(value, float | int) else "n/a"


def render_table(report: OverheadReport) -> Table:
    title = (
        f"fleet overhead: one classify worker with instant classifiers, {report.machine['database']}, "
        f"{report.machine['cpus']} CPUs"
    )
    table = Table(title=title)
    table.add_column("metric")
    for name in report.phases:
        table.add_column(name, justify="right")
    for row in _rows(report):
        table.add_row(*row)
    return table


def markdown_table(report: OverheadReport) -> str:
    lines = [f"| metric | {' | '.join(report.phases)} |", "|---" * (len(report.phases) + 1) + "|"]
    lines += [f"| {' | '.join(row)} |" for row in _rows(report)]
    return "\n".join(lines) + "\n"


def write_outputs(report: OverheadReport, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "overhead.json").write_text(json.dumps(asdict(report), indent=2, default=str) + "\n")
    (out_dir / "overhead.md").write_text(markdown_table(report))
