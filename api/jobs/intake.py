"""Group commit of single submissions (`POST /v1/jobs`), with isolation of a failed group."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool

from shared.constants import DEFAULT_TENANT, INTAKE_MAX_BATCH, INTAKE_MAX_FLUSHES
from shared.errors import RetryableError
from shared.schemas import JobCreate, JobOut

__all__ = ["IntakeBatcher"]

log = structlog.get_logger(__name__)


class IntakeBatcher:
    """Group commit for single submissions: concurrent `POST /v1/jobs` requests share one INSERT, one
    commit and one pipelined Redis write.

    `submit` queues a validated job and waits. Up to `max_flushes` flushers at a time each take
    everything queued so far (up to `max_batch`) and run `create_jobs` on it in the threadpool; what
    arrives meanwhile goes in the next flush (two flushers overlap one's database wait with the other's
    work). No job waits for a timer: an idle API flushes a lone job at once, a busy one
    amortizes each round trip over many jobs. A failed flush leaves no row behind, and its members are
    then stored one by one, so one bad job never fails its neighbours: each gets exactly what it would
    have got alone (its job, or its own error: the 4xx of a refused value; in an outage, the 503).

    Built once per app (`api.app`), held on `app.state.intake`; it binds to the event loop that first
    submits to it.
    """

    def __init__(
        self, store: Any, *, max_batch: int = INTAKE_MAX_BATCH, max_flushes: int = INTAKE_MAX_FLUSHES
    ) -> None:
        # `store(bodies, tenants) -> list[JobOut]` runs in the threadpool: create_jobs with its own
        # session, each job in its own caller's tenant (a group holds several callers' jobs).
        self._store = store
        self._max_batch = max_batch
        self._pending: list[tuple[JobCreate, str, asyncio.Future[JobOut]]] = []
        self._max_flushes = max_flushes
        self._flushing = 0
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    async def submit(self, body: JobCreate, tenant: str = DEFAULT_TENANT) -> JobOut:
        """Store and enqueue `body` (a job of `tenant`) with whatever else is waiting; its JobOut once
        committed and sent."""
        future: asyncio.Future[JobOut] = asyncio.get_running_loop().create_future()
        self._pending.append((body, tenant, future))
        if self._flushing < self._max_flushes:
            self._flushing += 1
            task = asyncio.get_running_loop().create_task(self._flush_all())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    def _store_each(self, items: list[tuple[JobCreate, str]]) -> list[JobOut | BaseException]:
        """Store each job alone (after its group failed): each its own JobOut or exception.

        An outage is nobody's fault and would fail every member alike: once one member alone fails
        with an infrastructure error (503: broker or database unavailable), the rest get that error
        without a try each (no N timeouts in a row against a hanging Redis)."""
        outcomes: list[JobOut | BaseException] = []
        outage: BaseException | None = None
        for body, tenant in items:
            if outage is not None:
                outcomes.append(outage)
                continue
            try:
                outcomes.append(self._store([body], [tenant])[0])
            except Exception as exc:
                outcomes.append(exc)
                if isinstance(exc, RetryableError | OperationalError):
                    outage = exc
        return outcomes

    async def _flush_all(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                outcomes: list[JobOut | BaseException]
                try:
                    outcomes = list(
                        await run_in_threadpool(
                            self._store, [b for b, _, _ in batch], [t for _, t, _ in batch]
                        )
                    )
                except Exception as exc:
                    outcomes = [exc]
                    if len(batch) > 1:  # isolate: only the member at fault may fail
                        log.warning("intake.group_failed", jobs=len(batch), error_type=type(exc).__name__)
                        outcomes = await run_in_threadpool(self._store_each, [(b, t) for b, t, _ in batch])
                except BaseException as exc:
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    raise
                for (_, _, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._flushing -= 1
