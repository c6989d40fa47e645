"""Reporting of `textfleet bench`: percentiles, and the engines scenario's report (bench.json, the
table in the terminal and in bench.md, and throughput.png).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

__all__ = ["BenchReport", "markdown_table", "percentile", "render_table", "table_rows", "write_outputs"]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


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
