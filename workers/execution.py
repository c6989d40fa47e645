"""Running one job: claim it, run its handler, record exactly one terminal state, announce it.

This is independent of Celery so it can be tested with fake engines; `workers.celery_app` calls it.
"""

from __future__ import annotations

import structlog
from pydantic import ValidationError

from shared.constants import TaskName
from shared.errors import ConfigurationError, TextfleetError
from shared.events import publish_job_event
from shared.schemas import JobStatus, parse_job_payload
from workers.handlers import HANDLERS
from workers.runtime import WorkerRuntime
from workers.store import Completion

__all__ = ["execute"]

log = structlog.get_logger(__name__)


def execute(job_id: str, task: TaskName, runtime: WorkerRuntime) -> JobStatus | None:
    """Run job `job_id` once. Returns its terminal status, or None when it was not ours to run
    (already claimed, canceled or finished: a redelivered message is harmless)."""
    with structlog.contextvars.bound_contextvars(job_id=job_id, task=task.value):
        claim = runtime.store.claim(job_id, runtime.hostname)
        if claim is None:
            log.info("job.skipped", reason="not queued")
            return None
        log.info("job.started", worker=runtime.hostname)
        runtime.in_flight.add(job_id)
        try:
            status, result, error, usage = _run(job_id, task, runtime, claim.input, claim.params)
        finally:
            runtime.in_flight.discard(job_id)
        won = runtime.store.finish(Completion(job_id, status, result=result, error=error, usage=usage))
        if won:
            _announce(runtime, job_id, status)
            log.info("job.finished", status=status.value, error_code=(error or {}).get("code"))
        return status if won else None


def _run(
    job_id: str,
    task: TaskName,
    runtime: WorkerRuntime,
    input_raw: dict[str, object],
    params_raw: dict[str, object],
) -> tuple[JobStatus, dict[str, object] | None, dict[str, str] | None, dict[str, int] | None]:
    try:
        input_, params = parse_job_payload(task, input_raw, params_raw)
        out = HANDLERS[task](runtime, job_id, input_, params, None)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        return JobStatus.FAILED, None, {"code": "invalid_input", "message": f"{field}: {first['msg']}"}, None
    except ConfigurationError as exc:
        log.error("job.misrouted", error=exc.message)
        return JobStatus.FAILED, None, exc.to_dict(), None
    except TextfleetError as exc:
        log.warning("job.failed", code=exc.code, error=exc.message)
        return JobStatus.FAILED, None, exc.to_dict(), None
    except TimeoutError:
        return JobStatus.FAILED, None, {"code": "timeout", "message": "the job ran past its time limit"}, None
    except Exception as exc:  # a model bug must fail this job, never the worker
        log.exception("job.crashed")
        return (
            JobStatus.FAILED,
            None,
            {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"},
            None,
        )
    return JobStatus.SUCCEEDED, out.result, None, out.usage


def _announce(runtime: WorkerRuntime, job_id: str, status: JobStatus) -> None:
    try:
        publish_job_event(runtime.redis, job_id, status.value)
    except Exception as exc:  # waiters fall back to their timeout; the DB already holds the truth
        log.warning("job.event_not_published", error=str(exc))
