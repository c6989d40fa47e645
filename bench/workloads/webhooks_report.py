"""The table of `textfleet bench --scenario webhooks` (terminal and Markdown)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

__all__ = ["markdown_table", "render_table", "table_rows"]


def table_rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    b, s, h = results["burst"], results["steady"], results["one_endpoint_hanging"]
    r = results["due_set_lost"]
    skipped_share = 100 * b["skipped_executions"] / max(b["events"], 1)
    return [
        (f"burst of {b['events']:.0f} events, one worker: events/s", f"{b['events_per_s']:.0f}"),
        (
            "  events per second of worker CPU (what a free core sustains)",
            f"{b['events_per_worker_cpu_s']:.0f}",
        ),
        (
            "  skipped executions (share of deliveries)",
            f"{b['skipped_executions']:.0f} ({skipped_share:.2f}%)",
        ),
        (
            f"steady {s['offered_per_s']:.0f} events/s: lag p50 / p99, s",
            f"{s['lag_p50_s']:.3f} / {s['lag_p99_s']:.3f}",
        ),
        (
            f"{h['offered_per_s']:.0f} events/s over 10 endpoints, 1 hanging: others' lag p50 / p99, s",
            f"{h['good_lag_p50_s']:.3f} / {h['good_lag_p99_s']:.3f}",
        ),
        (
            f"due set lost mid-burst of {r['events']:.0f}: longest pause, s / events/s after",
            f"{r['longest_pause_after_loss_s']:.2f} / {r['events_per_s_after_loss']:.0f}",
        ),
        (
            "duplicates / bad signatures (all phases)",
            f"{sum(p['duplicates'] for p in (b, s, h, r)):.0f} / "
            f"{sum(p['bad_signatures'] for p in (b, s, h, r)):.0f}",
        ),
    ]


def render_table(results: dict[str, Any]) -> Table:
    table = Table(title="textfleet bench: webhooks")
    table.add_column("metric")
    table.add_column("value")
    for row in table_rows(results):
        table.add_row(*row)
    return table


def markdown_table(results: dict[str, Any]) -> str:
    lines = ["| webhooks | value |", "| --- | ---: |"]
    lines += [f"| {a} | {b} |" for a, b in table_rows(results)]
    return "\n".join(lines) + "\n"
