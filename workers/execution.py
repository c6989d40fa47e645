"""Running one job: claim it, run its handler, record exactly one terminal state, announce it.

This is independent of Celery so it can be tested with fake engines; `workers.celery_app` calls it.

- A job whose `ttl_s` passed before it was claimed ends `expired` without running.
- `timeout_s` (or the configured default) bounds its run; past it the engine aborts the request and
  the job fails with code `timeout`.
- A transient failure (shared.errors.RetryableError) gives the job back to the queue with exponential
  backoff until `max_attempts`; a permanent one fails it at once with its code and message.
- A job canceled while running was already marked `canceled` by the API; its engine request is aborted
  (see `workers.control`) and the worker's late completion is ignored (the first terminal state wins).
- While a worker drains on shutdown, jobs aborted at the end of the drain period go back to the queue.
"""

from __future__ import annotations

import time
from typing import Any, TypeGuard

import structlog
from pydantic import ValidationError

from shared.backoff import backoff_s, doubling
from shared.constants import TaskName
from shared.db.models import utcnow
from shared.errors import ConfigurationError, RetryableError, TextfleetError
from shared.lifecycle import Completion
from shared.logging import error_fields, safe_message
from shared.queueing import send_job
from shared.schemas import JobStatus, parse_job_payload
from shared.usage import classified_texts
from workers import metrics
from workers.handlers import HANDLERS
from workers.runtime import WorkerRuntime
from workers.store import Claim

__all__ = ["claimed", "execute", "run_claimed"]

log = structlog.get_logger(__name__)


class _RequeueError(Exception):
    """The job goes back to the queue (transient failure, or aborted by a draining worker)."""

    def __init__(self, delay_s: float, reason: str) -> None:
        super().__init__(reason)
        self.delay_s = delay_s
        self.reason = reason


def execute(job_id: str, task: TaskName, runtime: WorkerRuntime) -> JobStatus | None:
    """Run job `job_id` once. Returns its terminal status, or None when it was not ours to finish
    (already claimed, canceled or finished: a redelivered message is harmless; or requeued)."""
    with structlog.contextvars.bound_contextvars(job_id=job_id, task=task.value):
        claim = runtime.store.claim(job_id, runtime.hostname)
        return run_claimed(claim, task, runtime) if claimed(claim, task) else _ended_at_claim(claim)


def claimed(claim: Claim | None, task: TaskName) -> TypeGuard[Claim]:
    """Whether a claim's job is to run; a job not claimed or expired at its claim is logged here."""
    if claim is None:
        log.info("job.skipped", reason="not queued")
        return False
    if claim.expired:  # ended (and announced) by the claim
        log.info("job.expired", ttl_s=claim.params.get("ttl_s"))
        metrics.observe_finished(task, JobStatus.EXPIRED.value)
        return False
    return True


def _ended_at_claim(claim: Claim | None) -> JobStatus | None:
    return JobStatus.EXPIRED if claim is not None else None


def run_claimed(claim: Claim, task: TaskName, runtime: WorkerRuntime) -> JobStatus | None:
    """Run a job this worker claimed (`claimed` is true), write its outcome, announce it. Its terminal
    status, or None when it was requeued or another terminal state was written first (a cancel)."""
    job_id = claim.job_id
    with structlog.contextvars.bound_contextvars(job_id=job_id, task=task.value):
        log.debug("job.started", worker=runtime.hostname, attempt=claim.attempts)
        runtime.in_flight.add(job_id)
        metrics.observe_started(task, claim.created_at, utcnow())
        started = time.perf_counter()
        try:
            completion = _run(task, runtime, claim)
        except _RequeueError as requeue:
            metrics.observe_run(task, "requeued", time.perf_counter() - started, None)
            _requeue(runtime, job_id, task, claim, requeue)
            return None
        finally:
            runtime.in_flight.discard(job_id)
        status = completion.status
        metrics.observe_run(task, status.value, time.perf_counter() - started, completion.usage)
        won = runtime.store.finish(completion)  # batched with others: written, then announced
        if won:
            metrics.observe_finished(task, status.value)
            log.info("job.finished", status=status.value, error_code=(completion.error or {}).get("code"))
        return status if won else None


def _run(task: TaskName, runtime: WorkerRuntime, claim: Claim) -> Completion:
    """The job's outcome (its claimant's completion), or _RequeueError."""
    settings = runtime.settings

    def failed(error: dict[str, Any]) -> Completion:
        return Completion(claim.job_id, JobStatus.FAILED, error=error, worker=runtime.hostname)

    try:
        input_, params = parse_job_payload(task, claim.input, claim.params)
        timeout_s = getattr(params, "timeout_s", None) or settings.default_timeout_s
        out = HANDLERS[task](runtime, claim.job_id, input_, params, timeout_s)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        return failed({"code": "invalid_input", "message": f"{field}: {first['msg']}"})
    except RetryableError as exc:
        if claim.attempts < settings.max_attempts:
            schedule = doubling(settings.retry_backoff_s, settings.retry_backoff_max_s)
            delay = backoff_s(claim.attempts, schedule)
            raise _RequeueError(delay, exc.code) from exc
        log.warning("job.retries_exhausted", **error_fields(exc), attempts=claim.attempts)
        return failed(exc.to_dict())
    except ConfigurationError as exc:
        log.error("job.misrouted", **error_fields(exc))
        return failed(exc.to_dict())
    except TextfleetError as exc:
        log.warning("job.failed", **error_fields(exc))  # the message may quote the job
        return failed(exc.to_dict())
    except TimeoutError:
        return failed({"code": "timeout", "message": "the job ran past its time limit"})
    except Exception as exc:  # a model bug must fail this job, never the worker
        log.exception("job.crashed", hide_message=True)
        return failed({"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"})
    if out.result.get("finish_reason") == "abort" and runtime.draining.is_set():
        raise _RequeueError(0.0, "worker shutting down")
    return Completion(
        claim.job_id,
        JobStatus.SUCCEEDED,
        result=out.result,
        usage=out.usage,
        classified_texts=classified_texts(task, claim.input),
        worker=runtime.hostname,
    )


def _requeue(
    runtime: WorkerRuntime, job_id: str, task: TaskName, claim: Claim, requeue: _RequeueError
) -> None:
    if runtime.store.requeue(job_id, delay_s=requeue.delay_s):
        try:
            send_job(runtime.celery, job_id, task, claim.priority, countdown=requeue.delay_s)
        except Exception as exc:  # the sweeper re-sends jobs queued too long
            log.warning("job.requeue_send_failed", error=safe_message(exc))
        log.info("job.requeued", reason=requeue.reason, delay_s=requeue.delay_s, attempt=claim.attempts)
