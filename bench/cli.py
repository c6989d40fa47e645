"""`textfleet bench`: one command, one scenario at a time (`--scenario`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from shared.settings import get_settings

__all__ = ["SCENARIOS", "bench"]

#: What `--scenario` can name, and what each measures.
SCENARIOS = {
    "engines": "the bare engines against the fleet end to end (throughput, latency, intake)",
    "webhooks": "one webhook worker against a local receiver (events/s, lag p50/p99, one endpoint hanging)",
    "wait-flood": "N clients long-polling one API process (waiters held, health-probe latency; no models)",
    "structured": "constrained decoding (extract, json_schema, regex) vs unconstrained of the same length",
    "overhead": "the fleet's own cost per job: one classify worker with instant classifiers (jobs/s per "
    "worker process, CPU µs per job; bulk and single POSTs)",
}


def bench(
    scenario: Annotated[
        str, typer.Option(help="; ".join(f"{name}: {what}" for name, what in SCENARIOS.items()) + ".")
    ] = "engines",
    quick: Annotated[
        bool, typer.Option(help="Tiny counts: checks the harness (CI), says nothing about speed.")
    ] = False,
    out: Annotated[Path, typer.Option(help="Directory for the results (JSON, Markdown, plots).")] = Path(
        "bench-results"
    ),
    generate_jobs: Annotated[int | None, typer.Option(help="engines: generation jobs (256).")] = None,
    tokens: Annotated[
        int | None, typer.Option(help="engines: output tokens per generation job (64).")
    ] = None,
    moderate_jobs: Annotated[int | None, typer.Option(help="engines: moderation jobs (2000).")] = None,
    waiters: Annotated[int | None, typer.Option(help="wait-flood: concurrent ?wait clients (2000).")] = None,
    requests: Annotated[int | None, typer.Option(help="structured: requests at once per case (64).")] = None,
    jobs: Annotated[int | None, typer.Option(help="overhead: jobs per phase (2000).")] = None,
    profile: Annotated[
        bool, typer.Option(help="overhead: py-spy profiles of the API and the worker (perturbs the figures).")
    ] = False,
) -> None:
    """Measure one scenario on this machine; prints a table and writes the results under --out."""
    from shared.logging import configure_logging

    if scenario not in SCENARIOS:
        raise typer.BadParameter(f"must be one of: {', '.join(SCENARIOS)}", param_hint="--scenario")
    console = Console(stderr=True)
    settings = get_settings()
    configure_logging(settings, process="bench")
    # The bench's own stack keeps its embedded Redis and SQLite apart from `textfleet dev`'s.
    stack_settings = settings.model_copy(update={"data_dir": out.resolve() / "stack"})
    if scenario == "webhooks":
        from bench.workloads.webhooks import WebhookBenchConfig, run_webhook_bench

        run_webhook_bench(
            settings, WebhookBenchConfig.quick(out) if quick else WebhookBenchConfig(out_dir=out), console
        )
    elif scenario == "structured":
        from bench.workloads.structured import StructuredBenchConfig, run_structured_bench

        structured = StructuredBenchConfig.quick(out) if quick else StructuredBenchConfig(out_dir=out)
        run_structured_bench(settings, replace(structured, requests=requests or structured.requests), console)
    elif scenario == "overhead":
        from bench.workloads.overhead import OverheadConfig, run_overhead

        overhead = OverheadConfig.quick(out) if quick else OverheadConfig(out_dir=out)
        run_overhead(stack_settings, replace(overhead, jobs=jobs or overhead.jobs, profile=profile), console)
    elif scenario == "wait-flood":
        from bench.workloads.waitflood import WaitFloodConfig, run_wait_flood

        flood = WaitFloodConfig.quick(out) if quick else WaitFloodConfig(out_dir=out)
        run_wait_flood(stack_settings, replace(flood, waiters=waiters or flood.waiters), console)
    else:
        from bench.workloads.engines import BenchConfig, run_bench

        config = BenchConfig.quick(out) if quick else BenchConfig(out_dir=out)
        config = replace(
            config,
            generate_jobs=generate_jobs or config.generate_jobs,
            output_tokens=tokens or config.output_tokens,
            moderate_jobs=moderate_jobs or config.moderate_jobs,
        )
        run_bench(stack_settings, config, console)
    console.print(f"[green]results in {out}/[/]")
