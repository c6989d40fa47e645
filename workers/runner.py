"""The jobs one worker process holds at once, whatever messages they came in, claimed together.

A worker's concurrency counts jobs, not messages: a message may carry a group of jobs
(`shared.queueing.job_groups`), and `concurrency` Celery threads could otherwise claim `concurrency`
groups at once. Messages hand their jobs to the process's one `JobRunner`: its dispatcher thread
claims waiting jobs while fewer than `capacity` run, as many in one statement as there are free
slots (waiting a moment for a fuller claim when only a few are free), and runs each claimed job on a
pool thread, where the classifier batcher gathers it with the others. So no more than `capacity` jobs
of a process are `running` (what its engine or batcher holds, and what KEDA's target per pod
assumes), and a busy worker claims in a few statements a second, not one per job.

A worker that begins draining claims no more: jobs still waiting end with `JobLeftError` (their
message goes back to the queue, see `workers.groups`). Only the dispatcher waits for slots (one
condition, one waiter: no thundering herd of waiting messages); a message's thread waits on its own
jobs' futures. The claim and the run are given by the caller (`workers.groups.attach_runner`), so this
module knows nothing of the job path.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import structlog

from shared.constants import PRIORITY_DEFAULT, TaskName
from shared.schemas import JobStatus
from workers.store import Claim

__all__ = ["JobLeftError", "JobRunner"]

log = structlog.get_logger(__name__)

#: Most jobs one claim statement takes (a bound on its `IN (...)` list).
CLAIM_MAX = 512
#: How long the dispatcher waits for more free slots when only a few are free (seconds).
FILL_WAIT_S = 0.002
#: How long an idle dispatcher sleeps before it looks at the drain and close flags again (seconds).
POLL_S = 0.2

#: (job ids) -> their claims, in order: None for a job not claimed (see `JobStore.claim_many`).
ClaimMany = Callable[[list[str]], list[Claim | None]]
#: (claim or None, task) -> whether the job is to run (False: not claimed, or ended at its claim).
Ready = Callable[[Claim | None, TaskName], bool]
#: (claim, task) -> the job's terminal status, None when not ours to finish (`run_claimed`).
Run = Callable[[Claim, TaskName], JobStatus | None]


class JobLeftError(Exception):
    """The job was not claimed: its worker began draining first. It is still `queued`."""


@dataclass(order=True)
class _Waiting:
    """A job waiting for its claim; ordered by priority (higher first), then by arrival."""

    rank: tuple[int, int]
    job_id: str = field(compare=False)
    task: TaskName = field(compare=False)
    future: Future[JobStatus | None] = field(default_factory=Future, compare=False)


class JobRunner:
    """Claims and runs the jobs of a process's messages, at most `capacity` at once."""

    def __init__(
        self, capacity: int, *, claim: ClaimMany, ready: Ready, run: Run, draining: threading.Event
    ) -> None:
        if capacity < 1:
            raise ValueError(f"a worker holds at least one job, not {capacity}")
        self.capacity = capacity
        self._claim, self._ready, self._run, self._draining = claim, ready, run, draining
        self._least = max(1, capacity // 4)  # a claim smaller than this waits FILL_WAIT_S for more
        self._waiting: list[_Waiting] = []  # a heap: the next claims are the most urgent, oldest first
        self._arrivals = itertools.count()
        self._free = capacity
        self._closed = False
        self._changed = threading.Condition()
        self._pool = ThreadPoolExecutor(capacity, thread_name_prefix="textfleet-job")
        self._dispatcher = threading.Thread(target=self._dispatch, name="textfleet-claims", daemon=True)
        self._dispatcher.start()

    @property
    def running(self) -> int:
        """Jobs claimed and not yet ended."""
        with self._changed:
            return self.capacity - self._free

    def submit(
        self, job_ids: Sequence[str], task: TaskName, priority: int = PRIORITY_DEFAULT
    ) -> list[Future[JobStatus | None]]:
        """Queue a message's jobs at its priority: they are claimed before any waiting job of a lower
        priority (a message fetched later, but more urgent, overtakes the groups already reserved).
        Each future ends with the job (its status, or JobLeftError)."""
        with self._changed:
            if self._closed:
                raise RuntimeError("the job runner is closed")
            entries = [_Waiting((-priority, next(self._arrivals)), job_id, task) for job_id in job_ids]
            for entry in entries:
                heapq.heappush(self._waiting, entry)
            self._changed.notify()
        return [entry.future for entry in entries]

    def close(self) -> None:
        """Claim nothing more (waiting jobs are left), let the running ones end."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._dispatcher.join(timeout=10)
        self._pool.shutdown(wait=True)

    # --- the dispatcher thread --------------------------------------------------------------------
    def _dispatch(self) -> None:
        while True:
            taken, left = self._next()
            for entry in left:
                entry.future.set_exception(JobLeftError(entry.job_id))
            if taken is None:
                return
            if taken:
                self._start(taken)

    def _next(self) -> tuple[list[_Waiting] | None, list[_Waiting]]:
        """(jobs to claim now, or None once closed; jobs left because the worker is draining)."""
        filled_by: float | None = None
        with self._changed:
            while True:
                if self._closed or (self._draining.is_set() and self._waiting):
                    left = list(self._waiting)
                    self._waiting.clear()
                    return (None if self._closed else []), left
                if self._waiting and self._free and not self._draining.is_set():
                    now = time.monotonic()
                    if filled_by is None:
                        filled_by = now + FILL_WAIT_S
                    if self._free >= min(len(self._waiting), self._least) or now >= filled_by:
                        count = min(self._free, len(self._waiting), CLAIM_MAX)
                        self._free -= count
                        return [heapq.heappop(self._waiting) for _ in range(count)], []
                    self._changed.wait(filled_by - now)
                else:
                    self._changed.wait(POLL_S)

    def _start(self, taken: list[_Waiting]) -> None:
        """Claim `taken` and start each claimed job. Whatever fails here fails those jobs' messages (the
        database unreachable: as a lone job's would), never the dispatcher, and gives their slots back."""
        try:
            claims = self._claim([entry.job_id for entry in taken])
            if len(claims) != len(taken):
                raise RuntimeError(f"{len(taken)} jobs claimed, {len(claims)} answers")
        except Exception as exc:
            self._give(len(taken))
            for entry in taken:
                entry.future.set_exception(exc)
            return
        for entry, claim in zip(taken, claims, strict=True):
            try:
                with structlog.contextvars.bound_contextvars(job_id=entry.job_id, task=entry.task.value):
                    to_run = self._ready(claim, entry.task)
                if to_run and claim is not None:
                    self._pool.submit(self._run_one, entry, claim)
                    continue
                entry.future.set_result(JobStatus.EXPIRED if claim is not None else None)
            except Exception as exc:  # e.g. the pool shut down under a closing worker
                entry.future.set_exception(exc)
            self._give(1)

    # --- the pool's threads -----------------------------------------------------------------------
    def _run_one(self, entry: _Waiting, claim: Claim) -> None:
        try:
            entry.future.set_result(self._run(claim, entry.task))
        except BaseException as exc:  # the job path's own failures are outcomes; this is a bug
            log.exception("job.run_crashed", job_id=entry.job_id)
            entry.future.set_exception(exc)
        finally:
            self._give(1)

    def _give(self, count: int) -> None:
        with self._changed:
            self._free += count
            self._changed.notify()  # only the dispatcher waits on this condition
