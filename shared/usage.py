"""Usage accounting (issue 12): what a job adds to its tenant's usage, and the rule for each figure.

A job's usage is fixed by its terminal state and kept in accounting columns of its row, which a
retention purge of its input and result leaves alone:

- `prompt_tokens`, `completion_tokens`: a generation's tokens (written by the worker at finish);
- `classified_texts`: how many texts a succeeded classifier job classified (a `text` list counts
  each), counted from the input by the worker when it finishes the job (`classified_texts` below);
- run seconds: `finished_at - started_at` of a job that ran (`started_at` is its last start; a job
  that never started, expired or canceled while queued, ran 0 s).

Two readers use the same columns and the same rule: `GET /v1/usage` sums them in SQL
(`shared.db.usage`), and the `textfleet_usage_*` Prometheus counters (`shared.metrics`) are moved
once per job, by `count_ended`, after the commit of its terminal state (`shared.lifecycle.announce`),
in whichever process ended it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.metrics import (
    USAGE_CLASSIFIED_TEXTS,
    USAGE_COMPLETION_TOKENS,
    USAGE_JOBS,
    USAGE_PROMPT_TOKENS,
    USAGE_RUN_SECONDS,
)
from shared.tasks import TASKS, Engine

__all__ = ["CLASSIFIER_TASKS", "JobUsage", "classified_texts", "count_ended", "run_seconds"]

#: Tasks whose jobs count classified texts (their handler runs on the classifier engine).
CLASSIFIER_TASKS = frozenset(TASKS.by_engine(Engine.CLASSIFIER))


def classified_texts(task: str, input_: Mapping[str, Any]) -> int | None:
    """How many texts a succeeded job of `task` classified, from its input: each string of a `text`
    list, else one; None for a task that classifies nothing (generation)."""
    if task not in CLASSIFIER_TASKS:
        return None
    text = input_.get("text")
    return len(text) if isinstance(text, list) else 1


def run_seconds(started_at: datetime | None, finished_at: datetime | None) -> float:
    """Seconds from start to terminal state; 0 for a job that never started."""
    if started_at is None or finished_at is None:
        return 0.0
    return max(0.0, (finished_at - started_at).total_seconds())


@dataclass(frozen=True)
class JobUsage:
    """What one ended job adds to its tenant's usage (read back from the row its end wrote)."""

    tenant: str
    task: str
    status: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    classified_texts: int = 0
    run_seconds: float = 0.0

    @classmethod
    def from_row(cls, row: Any) -> JobUsage:
        """From the row `shared.db.repository.finish` returns (tenant_id, task, status, started_at,
        finished_at, prompt_tokens, completion_tokens, classified_texts)."""
        return cls(
            tenant=row.tenant_id,
            task=row.task,
            status=row.status,
            prompt_tokens=row.prompt_tokens or 0,
            completion_tokens=row.completion_tokens or 0,
            classified_texts=row.classified_texts or 0,
            run_seconds=run_seconds(row.started_at, row.finished_at),
        )


def count_ended(usages: Iterable[JobUsage]) -> None:
    """Move the `textfleet_usage_*` counters by what each ended job used (call once per job, after
    the commit of its terminal state). Amount counters gain a series only once they move."""
    for u in usages:
        USAGE_JOBS.labels(tenant=u.tenant, task=u.task, status=u.status).inc()
        if u.prompt_tokens > 0:
            USAGE_PROMPT_TOKENS.labels(tenant=u.tenant, task=u.task).inc(u.prompt_tokens)
        if u.completion_tokens > 0:
            USAGE_COMPLETION_TOKENS.labels(tenant=u.tenant, task=u.task).inc(u.completion_tokens)
        if u.classified_texts > 0:
            USAGE_CLASSIFIED_TEXTS.labels(tenant=u.tenant, task=u.task).inc(u.classified_texts)
        if u.run_seconds > 0:
            USAGE_RUN_SECONDS.labels(tenant=u.tenant, task=u.task).inc(u.run_seconds)
