"""Worker-side metrics: what execution records per job, and gauges that read the runtime at scrape time.

The metrics themselves are defined in `shared.metrics` (prometheus-client's default registry), which
the side port (`workers.heartbeat.serve_side_port`) serves at `/metrics`. The KV-cache gauge is set by
vLLM's stat logger (`workers.engines.vllm_start.kv_cache_stat_logger`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from shared.constants import TaskName
from shared.metrics import (
    ENGINE_BATCH_SIZE,
    ENGINE_RUNNING_REQUESTS,
    GENERATED_TOKENS,
    JOB_QUEUE_WAIT,
    JOB_RUN,
    JOBS_FINISHED,
    PROMPT_TOKENS,
    WORKER_IN_FLIGHT,
)

if TYPE_CHECKING:
    from workers.runtime import WorkerRuntime

__all__ = [
    "instrument_runtime",
    "observe_finished",
    "observe_run",
    "observe_started",
]

log = structlog.get_logger(__name__)

#: Tasks whose tokens count in the generated/prompt token totals.
_GENERATION_TASKS = frozenset({"generate", "summarize"})


def observe_started(task: TaskName, created_at: datetime, started_at: datetime) -> None:
    """Queue wait of a job that starts running: `started_at - created_at` (a requeued job's wait counts
    from its original creation). Naive datetimes (SQLite) are taken as UTC."""
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    if started_at.tzinfo is None:
        started_at = started_at.replace(tzinfo=UTC)
    JOB_QUEUE_WAIT.labels(task=task.value).observe(max(0.0, (started_at - created_at).total_seconds()))


def observe_run(task: TaskName, status: str, seconds: float, usage: dict[str, int] | None) -> None:
    """One run of a job's handler: its duration by outcome (succeeded, failed, requeued), and the
    tokens of a generation."""
    JOB_RUN.labels(task=task.value, status=status).observe(max(0.0, seconds))
    if usage and task in _GENERATION_TASKS:
        PROMPT_TOKENS.inc(max(0, int(usage.get("prompt_tokens", 0))))
        GENERATED_TOKENS.inc(max(0, int(usage.get("completion_tokens", 0))))


def observe_finished(task: TaskName, status: str) -> None:
    """A job this worker brought to a terminal state (succeeded, failed, expired)."""
    JOBS_FINISHED.labels(task=task.value, status=status).inc()


def _safe(read: Callable[[], float]) -> Callable[[], float]:
    def wrapped() -> float:
        try:
            return float(read())
        except Exception:  # a scrape must never fail because the engine is closing
            return 0.0

    return wrapped


def instrument_runtime(runtime: WorkerRuntime) -> None:
    """Bind the scrape-time gauges to `runtime` (jobs in flight, engine requests) and record the
    classifier batcher's batch sizes. Call once per worker process, after the models are loaded."""
    WORKER_IN_FLIGHT.set_function(_safe(lambda: len(runtime.in_flight)))
    engine = runtime.generation
    if engine is not None:
        ENGINE_RUNNING_REQUESTS.set_function(_safe(engine.running))
    batcher = getattr(runtime.classifiers, "batcher", None)
    if batcher is not None:
        _record_batch_sizes(batcher)


def _record_batch_sizes(batcher: Any) -> None:
    """Observe each batch's size of a `workers.batching.MicroBatcher` (through its `on_batch` hook)."""
    batcher.on_batch = ENGINE_BATCH_SIZE.observe
