"""Worker-side metrics: what execution records per job, and gauges that read the runtime at scrape time.

The metrics themselves are defined in `shared.metrics` (prometheus-client's default registry), which
the side port (`workers.heartbeat.serve_side_port`) serves at `/metrics`. Nothing heavy is imported
at module level: vLLM only inside `kv_cache_stat_logger()`.

KV-cache usage: vLLM 0.32's AsyncLLM reports `SchedulerStats.kv_cache_usage` to its stat loggers only
when stats are on. Passing `stat_loggers=[kv_cache_stat_logger()]` to `AsyncLLM.from_engine_args`
turns them on *without* vLLM's default loggers (no log lines, no `vllm:*` Prometheus metrics) and sets
`textfleet_engine_kv_cache_usage_ratio` on every engine step that reports scheduler stats.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from shared.constants import TaskName
from shared.metrics import (
    ENGINE_BATCH_SIZE,
    ENGINE_KV_CACHE_USAGE,
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
    "kv_cache_stat_logger",
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


def kv_cache_stat_logger() -> Callable[..., Any]:
    """A vLLM stat-logger factory (`AsyncLLM.from_engine_args(..., stat_loggers=[...])`) that sets
    `textfleet_engine_kv_cache_usage_ratio` from the scheduler's stats. Imports vLLM."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class KVCacheStatLogger(StatLoggerBase):
        def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
            self.engine_index = engine_index

        def record(
            self,
            scheduler_stats: Any,
            iteration_stats: Any,
            mm_cache_stats: Any = None,
            engine_idx: int = 0,
        ) -> None:
            if scheduler_stats is not None:
                ENGINE_KV_CACHE_USAGE.set(float(scheduler_stats.kv_cache_usage))

        def log_engine_initialized(self) -> None:
            return None

    return KVCacheStatLogger
