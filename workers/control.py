"""Controlling running jobs from outside the task threads: cancel requests and the shutdown drain.

- Cancel: the API marks a running job `canceled` and publishes its id on `CANCEL_CHANNEL`; every
  worker listens, and the one running it aborts the request inside vLLM, freeing its KV cache.
- Drain: on SIGTERM Celery stops taking messages and waits for running tasks. We give them
  `worker_drain_s`; then the remaining generation requests are aborted and their jobs go back to the
  queue (see `workers.execution`), so nothing is lost and nothing half-written.
"""

from __future__ import annotations

import threading
import time

import structlog

from shared.constants import CANCEL_CHANNEL
from shared.logging import safe_message
from workers.runtime import WorkerRuntime

__all__ = ["CancelListener", "drain"]

log = structlog.get_logger(__name__)


class CancelListener:
    """Aborts this worker's in-flight requests whose jobs were canceled (Redis pub/sub)."""

    def __init__(self, runtime: WorkerRuntime) -> None:
        self.runtime = runtime
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="textfleet-cancel", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                pubsub = self.runtime.redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                pubsub.subscribe(CANCEL_CHANNEL)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self.handle(
                            message["data"].decode()
                            if isinstance(message["data"], bytes)
                            else message["data"]
                        )
                pubsub.close()
            except Exception as exc:  # Redis restarting: subscribe again
                log.warning("cancel.listener_error", error=safe_message(exc))
                self._stop.wait(1.0)

    def handle(self, job_id: str) -> bool:
        """Abort `job_id` if this worker runs it; whether it did."""
        if job_id not in self.runtime.in_flight or self.runtime.generation is None:
            return False
        self.runtime.generation.abort(job_id)
        log.info("job.abort_requested", job_id=job_id, reason="canceled")
        return True


def drain(runtime: WorkerRuntime, drain_s: float, *, poll_s: float = 0.2) -> int:
    """Let running jobs finish for up to `drain_s`, then abort the rest; returns how many were aborted.

    Aborted jobs are given back to the queue by `workers.execution` (the runtime is marked draining)."""
    runtime.draining.set()
    deadline = time.monotonic() + drain_s
    log.info("worker.draining", running=len(runtime.in_flight), drain_s=drain_s)
    while runtime.in_flight and time.monotonic() < deadline:
        time.sleep(poll_s)
    left = list(runtime.in_flight)
    if left and runtime.generation is not None:
        for job_id in left:
            runtime.generation.abort(job_id)
        log.warning("worker.drain_aborted", jobs=len(left))
    return len(left) if runtime.generation is not None else 0
