"""Long polling (`GET /v1/jobs/{id}?wait=N`) that scales: one Redis subscription per API process.

- `JobEvents` holds ONE pub/sub connection per process, subscribed to the pattern of every job's event
  channel (`textfleet:events:job:*`), and fans each terminal-state announcement out in memory to the
  requests waiting on that job. A waiter costs an `asyncio.Event`, not a Redis connection. Each
  (re)subscription wakes every waiter to re-read the database, since announcements made while the
  connection was down are lost.
- `JobReader` coalesces database reads: the reads that waiters ask for while one is in flight go
  together in the next (one `SELECT ... WHERE id IN (...)` per batch in the threadpool), so two
  thousand waiters never queue two thousand reads in front of `/readyz`. Each read names the tenant it
  may see: another tenant's job is answered "not found" by the same read that finds a missing id, so
  `?wait` on it returns at once, exactly like `?wait` on an id that does not exist.
- `wait_for_job` registers its waiter *before* it asks for the job's state, so an announcement made
  between the read and the wait cannot be missed; and every read it asks for starts after it asked.

Above `wait_max_waiters` waiters in the process, or while the subscription is down, `?wait` answers at
once with the job's current state (a `200`, never a `5xx`): a client that still sees a non-terminal
status simply asks again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import structlog
from redis.asyncio import Redis
from starlette.concurrency import run_in_threadpool

from api.jobs.reads import OwnedJob, job_not_found
from shared.constants import (
    EVENTS_CHANNEL_PREFIX,
    EVENTS_HEALTH_CHECK_S,
    EVENTS_POLL_S,
    EVENTS_READY_WITHIN_S,
    EVENTS_RETRY_S,
    READER_MAX_BATCH,
    READER_MAX_FLUSHES,
    REDIS_CONNECT_TIMEOUT_S,
)
from shared.metrics import WAITS_ANSWERED_AT_ONCE, WAITS_HELD
from shared.schemas import JobOut

__all__ = ["JobEvents", "JobReader", "JobWaiter", "wait_for_job"]

log = structlog.get_logger(__name__)

_PATTERN = f"{EVENTS_CHANNEL_PREFIX}*"
_PREFIX = EVENTS_CHANNEL_PREFIX.encode()


class JobEvents:
    """The process's one subscription to job announcements, fanned out to in-memory waiters."""

    def __init__(self, redis_url: str, *, max_waiters: int) -> None:
        self._redis_url = redis_url
        self.max_waiters = max_waiters
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._count = 0
        self._live = asyncio.Event()
        self._tried = asyncio.Event()  # the first subscription attempt ended (either way)
        self._task: asyncio.Task[None] | None = None
        self.refused = 0  # waits answered at once because the process was full

    @property
    def waiting(self) -> int:
        """Waiters registered now."""
        return self._count

    @property
    def live(self) -> bool:
        """Whether the subscription is confirmed (announcements reach the waiters)."""
        return self._live.is_set()

    async def start(self, ready_within_s: float = EVENTS_READY_WITHIN_S) -> None:
        """Start listening; wait up to `ready_within_s` for the subscription (not an error if Redis is
        down: the listener keeps retrying, and waits answer at once meanwhile)."""
        self._task = asyncio.get_running_loop().create_task(self._listen(), name="job-events")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._tried.wait(), ready_within_s)

    async def stop(self) -> None:
        """Stop listening and release every waiter."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._live.clear()
        self._wake_all()

    @contextlib.contextmanager
    def watch(self, job_id: str) -> Iterator[asyncio.Event | None]:
        """An event set whenever `job_id` is announced (or the subscription is renewed), or None when
        this process already holds `max_waiters` waiters or has no live subscription."""
        if self._count >= self.max_waiters or not self.live:
            if self.live:
                self.refused += 1
                WAITS_ANSWERED_AT_ONCE.inc()
            yield None
            return
        event = asyncio.Event()
        self._waiters.setdefault(job_id, set()).add(event)
        self._count += 1
        WAITS_HELD.inc()
        try:
            yield event
        finally:
            self._count -= 1
            WAITS_HELD.dec()
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    def _dispatch(self, channel: Any) -> None:
        if isinstance(channel, bytes) and channel.startswith(_PREFIX):
            for event in self._waiters.get(channel[len(_PREFIX) :].decode("ascii", "replace"), ()):
                event.set()

    async def _listen(self) -> None:
        delay = EVENTS_RETRY_S[0]
        client = Redis.from_url(
            self._redis_url,
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
            socket_keepalive=True,
            health_check_interval=EVENTS_HEALTH_CHECK_S,
        )
        try:
            while True:
                pubsub = client.pubsub()
                try:
                    await pubsub.psubscribe(_PATTERN)
                    while True:
                        message = await pubsub.get_message(timeout=EVENTS_POLL_S)
                        if message is None:
                            continue
                        if message["type"] == "pmessage":
                            self._dispatch(message["channel"])
                        elif message["type"] == "psubscribe":
                            # First subscription, or redis-py reconnected and subscribed again:
                            # announcements made in between are lost, so every waiter re-reads.
                            self._live.set()
                            self._tried.set()
                            self._wake_all()
                            delay = EVENTS_RETRY_S[0]
                            log.info("job_events.subscribed", waiters=self._count)
                except Exception as exc:  # Redis down or restarted: retry, answer waits at once meanwhile
                    self._live.clear()
                    self._tried.set()
                    self._wake_all()
                    log.warning(
                        "job_events.subscription_lost",
                        error_type=type(exc).__name__,
                        error=str(exc).splitlines()[0][:200] if str(exc) else "",
                        retry_in_s=delay,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, EVENTS_RETRY_S[1])
                finally:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()


class JobReader:
    """Coalesced reads of jobs: every read asked for while one is in flight goes in the next batch.

    A read asked for always starts after it was asked for (a batch takes only what is pending when it
    starts), which is what lets `wait_for_job` subscribe first and read second."""

    def __init__(
        self,
        read_many: Callable[[Sequence[str]], dict[str, OwnedJob]],
        *,
        max_batch: int = READER_MAX_BATCH,
        max_flushes: int = READER_MAX_FLUSHES,
    ) -> None:
        self._read_many = read_many
        self._max_batch = max_batch
        self._max_flushes = max_flushes
        self._pending: dict[str, list[tuple[asyncio.Future[JobOut], str | None]]] = {}
        self._flushing = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def read(self, job_id: str, tenant: str | None = None) -> JobOut:
        """The job's current state (JobNotFoundError if there is none, or, with `tenant`, if it is another
        tenant's)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[JobOut] = loop.create_future()
        self._pending.setdefault(job_id, []).append((future, tenant))
        if self._flushing < self._max_flushes:
            self._flushing += 1
            task = loop.create_task(self._flush_all())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _flush_all(self) -> None:
        try:
            while self._pending:
                ids = list(itertools.islice(self._pending, self._max_batch))
                batch = {job_id: self._pending.pop(job_id) for job_id in ids}
                try:
                    found = await run_in_threadpool(self._read_many, ids)
                except Exception as exc:
                    for futures in batch.values():
                        for future, _ in futures:
                            if not future.done():
                                future.set_exception(exc)
                    continue
                for job_id, futures in batch.items():
                    owned = found.get(job_id)
                    for future, tenant in futures:
                        if future.done():
                            continue
                        if owned is None or (tenant is not None and owned.tenant != tenant):
                            future.set_exception(job_not_found())
                        else:
                            future.set_result(owned.job)
        finally:
            self._flushing -= 1


async def wait_for_job(
    events: JobEvents, reader: JobReader, job_id: str, timeout_s: float, tenant: str | None = None
) -> JobOut:
    """The job once it is terminal, or its state after `timeout_s` seconds (at once when the process
    is full or has no subscription). `job_id` must be canonical. With `tenant`, another tenant's job is
    not found by the first read, at once, like a missing id."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    with events.watch(job_id) as announced:  # registered before the read: nothing is missed
        job = await reader.read(job_id, tenant)
        if announced is None:
            return job
        while not job.status.is_terminal and (remaining := deadline - loop.time()) > 0:
            try:
                await asyncio.wait_for(announced.wait(), remaining)
            except TimeoutError:
                break
            announced.clear()  # before the read: an announcement during it wakes us again
            job = await reader.read(job_id, tenant)
    if not job.status.is_terminal:  # the deadline: one last look (announcements are best effort)
        job = await reader.read(job_id, tenant)
    log.debug("job.wait_done", job_id=job_id, status=job.status.value)
    return job


class JobWaiter:
    """Long polling for one app (built once, held on `app.state.waiter`): the process's `JobEvents`
    subscription and a `JobReader` over `read_many` (one query per batch of ids, in the threadpool)."""

    def __init__(
        self, redis_url: str, read_many: Callable[[Sequence[str]], dict[str, OwnedJob]], *, max_waiters: int
    ) -> None:
        self.events = JobEvents(redis_url, max_waiters=max_waiters)
        self.reader = JobReader(read_many)

    async def start(self) -> None:
        """Subscribe (the app's lifespan calls this at startup)."""
        await self.events.start()

    async def stop(self) -> None:
        """Unsubscribe and release every waiter (at shutdown)."""
        await self.events.stop()

    async def read(self, job_id: str, tenant: str | None = None) -> JobOut:
        """The job's current state, read with whatever else is being read (`job_id` canonical; with
        `tenant`, only that tenant's job is found)."""
        return await self.reader.read(job_id, tenant)

    async def wait(self, job_id: str, timeout_s: float, tenant: str | None = None) -> JobOut:
        """The job once terminal, or its state after `timeout_s` (see `wait_for_job`)."""
        return await wait_for_job(self.events, self.reader, job_id, timeout_s, tenant)
