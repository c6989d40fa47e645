"""`textfleet chaos`: the operator's fault-injection run, with a progress bar and a table."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

__all__ = ["chaos"]


def chaos(
    jobs: Annotated[int, typer.Option(help="Jobs to run (each with started and completed webhooks).")] = 1000,
    generate_share: Annotated[
        float, typer.Option(help="Share of generation jobs; the rest classify.")
    ] = 0.05,
    worker_kills: Annotated[
        int,
        typer.Option(
            help="Workers to SIGKILL (in turn: generate, classify, webhooks), each replaced by a new one."
        ),
    ] = 3,
    redis_restarts: Annotated[int, typer.Option(help="Times Redis is killed and restarted empty.")] = 2,
    classify_workers: Annotated[int, typer.Option(help="Classify worker processes.")] = 2,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="An EMPTY database for the run (e.g. a fresh PostgreSQL database); default: a "
            "new SQLite file. Never point it at a production database."
        ),
    ] = None,
    log_dir: Annotated[
        Path | None, typer.Option(help="Where each process logs (default: a temp dir).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for jobs and deliveries to end.")] = 1800,
) -> None:
    """Run jobs through a fleet of its own (own Redis, API, workers) while killing workers and restarting
    Redis; print jobs lost, jobs finished twice, webhook events missing or duplicated, and worker
    processes that died by themselves. Exits 1 if any guarantee failed."""
    from textfleet.chaos.run import ChaosPlan, run_chaos

    console = Console()
    logs = log_dir or Path(tempfile.mkdtemp(prefix="textfleet-chaos-"))
    url = database_url or f"sqlite:///{logs / 'chaos.db'}"
    plan = ChaosPlan(
        jobs=jobs,
        generate_share=generate_share,
        worker_kills=worker_kills,
        redis_restarts=redis_restarts,
        classify_workers=classify_workers,
        settle_timeout_s=timeout,
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("starting", total=None)

        def progress(phase: str, done: int, total: int) -> None:
            bar.update(task, description=phase, completed=done, total=total)

        report = run_chaos(plan, url, logs, progress)
    table = Table(title="textfleet chaos")
    table.add_column("what")
    table.add_column("result", justify="right")
    for what, result in report.rows():
        table.add_row(what, result)
    console.print(table)
    for name, code in report.workers_died:
        console.print(f"[red]{name} died by itself (exit code {code})[/]; log: {logs / name}.log")
    console.print(f"logs: {report.log_dir}")
    if not report.ok:
        console.print("[red bold]FAILED[/]: a guarantee did not hold")
        raise typer.Exit(1)
    console.print("[green bold]OK[/]: no job lost or doubled, every event delivered once")
