"""The delivery loop of a webhook worker: pull due ids from Redis, claim and send them concurrently,
write outcomes in batches.

One asyncio loop per worker. Each round pulls up to `webhook_batch` due ids (as many as free slots of
`webhook_concurrency` allow), reads their rows in one query, queues them on their endpoint or defers
them (`workers.webhooks.endpoints`), reads the jobs of those their endpoints have room for in one query
and starts one POST task each. Finished attempts gather in a buffer that a flusher writes every few
milliseconds (one transaction) before settling the ids in Redis. Once a second it also rebuilds the due
set if Redis lost it (`shared.webhooks.queue.ensure_epoch`), returns leases of dead workers, and updates
the gauges.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from datetime import timedelta

import redis
import structlog

from shared.backoff import backoff_s
from shared.db.models import utcnow
from shared.metrics import (
    WEBHOOK_ATTEMPT_ERRORS,
    WEBHOOK_BREAKERS_OPEN,
    WEBHOOK_DELIVERIES,
    WEBHOOK_DELIVERY_LAG,
    WEBHOOK_PENDING,
)
from shared.settings import Settings
from shared.webhooks import queue as webhook_queue
from shared.webhooks.policy import BACKOFF_JITTER, BACKOFF_SCHEDULE_S
from workers.webhooks import store
from workers.webhooks.endpoints import SLOW_S, Endpoint, Endpoints
from workers.webhooks.http import Attempt, Destinations, Sender, Signers, post

__all__ = ["EARLY_TOLERANCE_S", "Deliverer", "lease_s"]

log = structlog.get_logger(__name__)

#: A row due this much after now still counts as due (clock skew between workers).
EARLY_TOLERANCE_S = 2.0
#: Seconds between maintenance passes (epoch check, lease reaping, gauges).
MAINTENANCE_S = 1.0


def lease_s(settings: Settings) -> float:
    """How long a pulled delivery is held: a wait for its endpoint (at most about one timeout once the
    endpoint is slow), one attempt (bounded by the timeout) and its outcome write, with slack. A worker
    that dies leaves it to be pulled again after this."""
    return 2 * settings.webhook_timeout_s + 10.0


class Deliverer:
    """Delivers webhook events until stopped; `run_until_idle` serves tests and the benchmark."""

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self.settings = settings
        self.redis = client
        self.signers = Signers(settings)
        self.sender = Sender(settings)
        self.destinations = Destinations(settings)
        self.endpoints = Endpoints(settings)
        self.rng = random.Random()
        self.lease_s = lease_s(settings)
        self.in_flight = 0
        self.waiting = 0  # pulled, queued on their endpoint, not yet started
        self._ready: set[Endpoint] = set()  # endpoints with waiting deliveries
        self._held: set[str] = set()  # ids waiting or in flight here
        self._tasks: set[asyncio.Task[None]] = set()
        self._outcomes: list[tuple[store.Outcome, float]] = []  # with the lag of a delivered one
        self._done: list[str] = []  # settled without a write (skipped)
        self._later: dict[str, float] = {}  # deferred: due again at (epoch seconds)
        self._slot_free = asyncio.Event()
        self._next_maintenance = 0.0
        self.stopping = asyncio.Event()

    # --- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver until `stopping` is set, then finish the attempts in flight and write them."""
        flusher = asyncio.create_task(self._flush_loop())
        try:
            while not self.stopping.is_set():
                try:
                    await self._maintenance()
                    pulled = await self.step()
                except (redis.RedisError, OSError) as exc:
                    log.warning("webhooks.redis_unavailable", error=str(exc))
                    pulled = 0
                    await self._sleep(0.5)
                except Exception as exc:  # the database is down: leases bring the ids back later
                    log.warning("webhooks.round_failed", error=str(exc))
                    pulled = 0
                    await self._sleep(0.5)
                if not pulled:
                    await self._sleep(self.settings.webhook_poll_s)
        finally:
            await self._drain()
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await self.flush()
            await self.close()

    async def run_until_idle(self, timeout_s: float = 30.0) -> None:
        """Deliver what is due now, until nothing is due or in flight (tests, benchmark)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            await self._maintenance()
            pulled = await self.step()
            if not pulled and not self._tasks and not self.waiting:
                await self.flush()
                return
            if not pulled:
                await asyncio.sleep(0.01)
            await self.flush()
        raise TimeoutError("deliveries still due or in flight")

    async def close(self) -> None:
        """Close the HTTP connections (after `run`, or after `run_until_idle`)."""
        await self.sender.aclose()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def step(self) -> int:
        """One round: start what endpoints have room for, then pull more due ids while there is room
        (in flight + waiting < `webhook_concurrency`). How many ids were pulled or started."""
        started = await self._launch()
        free = self.settings.webhook_concurrency - self.in_flight - self.waiting
        if free <= 0:
            if not started:
                self._slot_free.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._slot_free.wait(), 0.05)
            return started
        limit = min(free, self.settings.webhook_batch)
        ids = await asyncio.to_thread(webhook_queue.pull, self.redis, limit, self.lease_s)
        if not ids:
            return started
        await self._admit(ids)
        return len(ids) + started + await self._launch()

    async def _admit(self, ids: list[str]) -> None:
        """Read the pulled rows; queue the deliverable ones on their endpoint (in memory, at most its
        limit waiting); defer the rest in the due set."""
        rows = await asyncio.to_thread(store.read, self.settings.database_url, ids)
        now = utcnow()
        wall, mono = time.time(), time.monotonic()
        due_by = now + timedelta(seconds=EARLY_TOLERANCE_S)
        max_age = timedelta(seconds=self.settings.webhook_max_age_s)
        for delivery_id in ids:
            row = rows.get(delivery_id)
            if delivery_id in self._held:  # pulled again (a rebuild) while this worker has it: its
                continue  # attempt settles it
            if row is None or row.status != "pending":  # done already (or deleted): nothing to do
                self._skip(delivery_id)
            elif now >= row.window_start + max_age:
                expired = f"expired: not delivered within {self.settings.webhook_max_age_s:g} s of the event"
                if row.last_error:
                    expired = f"{expired}; last error: {row.last_error}"
                outcome = store.Outcome(row.id, row.attempts, "failed", error=expired, attempted=False)
                self._record(outcome, 0.0)
            elif row.next_attempt_at is not None and row.next_attempt_at > due_by:
                # e.g. rebuilt while another worker held it: due again when its lease or retry ends
                self._later[row.id] = row.next_attempt_at.timestamp()
                WEBHOOK_DELIVERIES.labels(outcome="skipped").inc()
            else:
                endpoint = self.endpoints.get(row.url)
                wait = endpoint.blocked(mono)
                slowness = endpoint.slowness(mono)
                room = endpoint.limit if slowness > SLOW_S else self.settings.webhook_concurrency
                if wait is None and len(endpoint.waiting) >= room:
                    wait = min(max(0.05, slowness), self.settings.webhook_timeout_s)
                if wait is None:
                    endpoint.waiting.append(row)
                    self._held.add(row.id)
                    self.waiting += 1
                    self._ready.add(endpoint)
                else:
                    self._defer(row.id, wall + self.endpoints.wait_with_jitter(wait))

    def _defer(self, delivery_id: str, at: float) -> None:
        self._later[delivery_id] = at
        WEBHOOK_DELIVERIES.labels(outcome="deferred").inc()

    async def _launch(self) -> int:
        """Claim (one update) and start the waiting deliveries their endpoints have room for now."""
        mono, wall = time.monotonic(), time.time()
        ready: list[store.Pending] = []
        for endpoint in list(self._ready):
            while endpoint.waiting:
                wait = endpoint.admit(mono)
                if wait is not None:
                    if endpoint.state != "closed" and not endpoint.probing:  # open: all of them wait
                        while endpoint.waiting:
                            self.waiting -= 1
                            self._held.discard(endpoint.waiting[0].id)
                            self._defer(
                                endpoint.waiting.popleft().id, wall + self.endpoints.wait_with_jitter(wait)
                            )
                    break
                ready.append(endpoint.waiting.popleft())
                self.waiting -= 1
            if not endpoint.waiting:
                self._ready.discard(endpoint)
        if not ready:
            return 0
        try:
            claimed = await asyncio.to_thread(store.prepare, self.settings.database_url, ready)
        except BaseException:
            for row in ready:
                self.endpoints.get(row.url).in_flight -= 1
                self._held.discard(row.id)
            raise
        for item in claimed:
            self.in_flight += 1
            task = asyncio.create_task(self._attempt(item))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(claimed)

    def _skip(self, delivery_id: str) -> None:
        self._done.append(delivery_id)
        WEBHOOK_DELIVERIES.labels(outcome="skipped").inc()

    async def _attempt(self, item: store.Claimed) -> None:
        row = item.row
        endpoint = self.endpoints.get(row.url)
        started = time.monotonic()
        try:
            if item.body is None:
                result = Attempt(None, f"{row.subject} no longer exists", True, "other")
            else:
                result = await post(
                    self.sender,
                    self.destinations,
                    self.signers.get(item.secret),
                    row.id,
                    row.url,
                    item.body,
                    self.settings.webhook_timeout_s,
                )
        except Exception as exc:  # a bug must not lose the outcome: retry later
            result = Attempt(None, f"{type(exc).__name__}: {exc}", False, "other")
        finally:
            self.in_flight -= 1
            self._slot_free.set()
        done = utcnow()
        if endpoint.done(result.ok, time.monotonic() - started, time.monotonic()):
            log.warning("webhooks.breaker_open", endpoint=row.url, cooldown_s=endpoint.cooldown_s)
        self._record(self._outcome(item, result), (done - row.created_at).total_seconds())

    def _outcome(self, item: store.Claimed, result: Attempt) -> store.Outcome:
        row, attempt = item.row, item.attempt
        now = utcnow()
        if result.ok:
            return store.Outcome(row.id, attempt, "delivered", result.status_code, None, now)
        WEBHOOK_ATTEMPT_ERRORS.labels(kind=result.kind).inc()
        deadline = row.window_start + timedelta(seconds=self.settings.webhook_max_age_s)
        next_at = now + timedelta(seconds=self._retry_delay(attempt))
        error = result.error
        if result.permanent or next_at >= deadline:
            if not result.permanent:
                error = f"{error}; gave up after {attempt} attempts ({self.settings.webhook_max_age_s:g} s)"
            log.warning("webhook.failed", delivery_id=row.id, attempts=attempt, error=error)
            return store.Outcome(row.id, attempt, "failed", result.status_code, error)
        return store.Outcome(row.id, attempt, "pending", result.status_code, error, next_at)

    def _retry_delay(self, attempt: int) -> float:
        return backoff_s(attempt, BACKOFF_SCHEDULE_S, jitter=BACKOFF_JITTER, rng=self.rng)

    def _record(self, outcome: store.Outcome, lag_s: float) -> None:
        self._outcomes.append((outcome, lag_s))

    # --- outcomes -------------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.webhook_flush_ms / 1000)
            try:
                await self.flush()
            except Exception as exc:  # database or Redis down: the buffer is kept and tried again
                log.warning("webhooks.flush_failed", error=str(exc))
                await asyncio.sleep(0.5)

    async def flush(self) -> None:
        """Write the buffered outcomes (one transaction), then settle their ids in Redis."""
        outcomes, self._outcomes = self._outcomes, []
        done, self._done = self._done, []
        later, self._later = self._later, {}
        try:
            if outcomes:
                await asyncio.to_thread(
                    store.write_outcomes, self.settings.database_url, [o for o, _ in outcomes]
                )
        except BaseException:
            self._outcomes = outcomes + self._outcomes
            self._done, self._later = done + self._done, {**later, **self._later}
            raise
        for outcome, lag_s in outcomes:
            self._held.discard(outcome.id)
            if outcome.status == "delivered":
                done.append(outcome.id)
                WEBHOOK_DELIVERIES.labels(outcome="delivered").inc()
                WEBHOOK_DELIVERY_LAG.observe(lag_s)
            elif outcome.status == "failed":
                done.append(outcome.id)
                WEBHOOK_DELIVERIES.labels(outcome="failed").inc()
            else:
                assert outcome.at is not None
                later[outcome.id] = outcome.at.timestamp()
                WEBHOOK_DELIVERIES.labels(outcome="retry").inc()
        if done or later:
            try:
                await asyncio.to_thread(webhook_queue.settle, self.redis, done, later)
            except (redis.RedisError, OSError) as exc:  # Redis restarting: the rebuild restores them
                log.warning("webhooks.settle_failed", error=str(exc), ids=len(done) + len(later))

    async def _drain(self) -> None:
        """Stop: what waits in memory goes back to the due set; the attempts in flight finish."""
        now = time.time()
        for endpoint in self._ready:
            while endpoint.waiting:
                delivery_id = endpoint.waiting.popleft().id
                self._held.discard(delivery_id)
                self._later[delivery_id] = now
        self._ready.clear()
        self.waiting = 0
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.settings.webhook_timeout_s + 5)

    async def _maintenance(self) -> None:
        now = time.monotonic()
        if now < self._next_maintenance:
            return
        self._next_maintenance = now + MAINTENANCE_S
        client, url = self.redis, self.settings.database_url
        if await asyncio.to_thread(webhook_queue.ensure_epoch, client, url):
            log.info("webhooks.due_set_rebuilt")
        reaped = await asyncio.to_thread(webhook_queue.reap, client)
        if reaped:
            log.info("webhooks.leases_reaped", count=reaped)
        due, leased = await asyncio.to_thread(webhook_queue.pending_counts, client)
        WEBHOOK_PENDING.set(due + leased)
        WEBHOOK_BREAKERS_OPEN.set(self.endpoints.open_count())
        self.endpoints.forget_idle()
