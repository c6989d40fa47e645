"""The fleet-wide sweeper: no job is lost between the database and the queue, or with a dead worker.

Every worker runs a `Sweeper` thread; a Redis lock lets one of them sweep per interval. A sweep runs
these stages, each a small function with its own transaction; jobs end through `shared.lifecycle`
(written, their webhook event recorded, announced) and change state only through
`shared.db.repository`:

1. expires `queued` jobs whose `params.ttl_s` has passed (they never run);
2. re-sends `queued` jobs whose message is older than `requeue_after_s` (a crash between insert and
   enqueue, or a Redis restart, lost it; a duplicate is harmless: the first claim wins);
3. recovers `running` jobs whose worker vanished (no heartbeat) or that ran past their time limit
   plus `running_grace_s`: back to the queue while attempts remain, else `failed`
   (`worker_lost` / `timeout`);
4. re-sends webhook deliveries that are overdue and in neither Redis set (their enqueue was lost; one
   waiting behind a backlog is never re-sent);
5. forgets idempotency keys older than `idempotency_ttl_s`;
6. drops terminal jobs left in the outstanding sets (an announce that never reached Redis);
7. moves batches on (`shared.batches`);
8. erases the data of jobs finished longer ago than their tenant's retention (`shared.privacy`):
   input, params, metadata, result and error text; the row stays for accounting (once per
   `RETENTION_PASS_S`).
9. returns tenants' quota reservations of jobs that ended unrefunded (`shared.quotas.reconcile`).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis
import structlog
from celery import Celery
from sqlalchemy import delete, select

from shared import lifecycle
from shared.batches import advance_active
from shared.constants import (
    RETENTION_LOCK,
    RETENTION_MAX_ROUNDS,
    RETENTION_PASS_S,
    SWEEP_BATCH,
    SWEEPER_LOCK,
    TASK_QUEUES,
    Queue,
    TaskName,
    outstanding_key,
)
from shared.db import job_queries, repository, session_scope
from shared.db.conflicts import retry_conflicts
from shared.db.models import IdempotencyKey, Job, utcnow
from shared.db.repository import AnyRow
from shared.lifecycle import Completion, Ended
from shared.logging import safe_message
from shared.privacy.retention import retention_plan
from shared.queueing import send_jobs
from shared.quotas.reconcile import reconcile
from shared.schemas import TERMINAL_STATUSES, JobStatus
from shared.settings import Settings
from shared.webhooks.queue import resend_lost
from workers.heartbeat import heartbeat_key

__all__ = ["Sweeper", "sweep"]

log = structlog.get_logger(__name__)


@dataclass
class _Sweep:
    """One sweep's clock, its clients, and what it did."""

    settings: Settings
    client: redis.Redis
    now: datetime = field(default_factory=utcnow)
    done: Counter[str] = field(default_factory=Counter)
    resend: list[tuple[str, TaskName, int]] = field(default_factory=list)  # (job id, task, priority)


def sweep(
    settings: Settings,
    client: redis.Redis,
    celery: Celery,
    missing_since: dict[tuple[str, str], float] | None = None,
) -> Counter[str]:
    """One sweep of the whole fleet (each stage its own transaction); counts of what it did, by kind.

    With `missing_since` (kept by a `Sweeper` between sweeps), a worker counts as vanished only once its
    heartbeat has been missing for two heartbeat periods: a Redis restart drops every heartbeat key for
    a moment, and running jobs must not be taken from live workers then. Without it (tests), at once."""
    state = _Sweep(settings, client)
    _expire_queued(state)
    _resend_stale(state)
    _recover_running(state, missing_since)
    if state.resend:  # after the commits
        send_jobs(celery, state.resend)
    _resend_lost_deliveries(state)
    _forget_idempotency_keys(state)
    state.done["outstanding_dropped"] += _prune_outstanding(settings, client)
    state.done["quota_reconciled"] += reconcile(client, settings.database_url)
    _advance_batches(state)
    _erase_past_retention(state)
    return +state.done


def _end(state: _Sweep, completions: list[Completion]) -> list[Ended]:
    """End jobs through the one path to a terminal state; those that ended."""
    if not completions:
        return []
    with session_scope(state.settings.database_url) as session:
        ended = lifecycle.end_jobs(session, state.client, completions)
    return [e for e in ended if e is not None]


def _expire_queued(state: _Sweep) -> None:
    """1. `queued` jobs whose `params.ttl_s` passed end `expired` (they never run)."""
    with session_scope(state.settings.database_url) as session:
        rows = job_queries.queued_with_ttl(session, limit=SWEEP_BATCH)
    expiries = []
    for row in rows:
        ttl = repository.ttl_passed(row.params, row.created_at, state.now)
        if ttl is not None:
            expiries.append(Completion.expired(row.id, ttl, JobStatus.QUEUED))
    state.done["expired"] += len(_end(state, expiries))


def _resend_stale(state: _Sweep) -> None:
    """2. `queued` jobs whose message is older than `requeue_after_s` are sent again."""
    cutoff = state.now - timedelta(seconds=state.settings.requeue_after_s)
    with session_scope(state.settings.database_url) as session:
        stale = repository.take_stale_queued(session, before=cutoff, now=state.now, limit=SWEEP_BATCH)
    state.resend += stale
    state.done["requeued_stale"] += len(stale)


def _recover_running(state: _Sweep, missing_since: dict[tuple[str, str], float] | None) -> None:
    """3. `running` jobs whose worker vanished go back to the queue while attempts remain, else fail
    (`worker_lost`); those past their time limit plus `running_grace_s` fail (`timeout`). A failed
    job's engine request is aborted, in case its worker still runs it."""
    with session_scope(state.settings.database_url) as session:
        rows = job_queries.running_jobs(session, limit=SWEEP_BATCH)
    pairs = {(TASK_QUEUES[TaskName(r.task)].value, r.worker or "") for r in rows}
    alive = _alive_workers(state.client, pairs)
    if missing_since is not None:
        alive |= _not_yet_lost(missing_since, pairs - alive, state.settings.worker_heartbeat_s * 2)
    failures: list[Completion] = []
    back: list[AnyRow] = []
    for row in rows:
        verdict = _verdict(state, row, alive)
        if verdict == "requeue":
            back.append(row)
        elif isinstance(verdict, dict):
            failures.append(Completion(row.id, JobStatus.FAILED, error=verdict))
    codes = {c.job_id: (c.error or {}).get("code") for c in failures}
    for ended in _end(state, failures):
        state.done[f"failed_{codes[ended.job_id]}"] += 1
    requeued = retry_conflicts(lambda: _requeue(state, sorted(back, key=lambda r: str(r.id))))
    state.resend += requeued
    state.done["recovered_running"] += len(requeued)


def _verdict(state: _Sweep, row: AnyRow, alive: set[tuple[str, str]]) -> dict[str, str] | str | None:
    """What becomes of a running job: the error it fails with, "requeue", or None (left running)."""
    settings = state.settings
    limit = float(row.params.get("timeout_s") or settings.default_timeout_s)
    if (
        row.started_at is not None
        and row.started_at + timedelta(seconds=limit + settings.running_grace_s) < state.now
    ):
        return {"code": "timeout", "message": f"ran past timeout_s={limit}"}
    if (TASK_QUEUES[TaskName(row.task)].value, row.worker or "") in alive:
        return None
    if row.attempts >= settings.max_attempts:
        message = f"its worker vanished on attempt {row.attempts} of {settings.max_attempts}"
        return {"code": "worker_lost", "message": message}
    return "requeue"


def _requeue(state: _Sweep, rows: list[AnyRow]) -> list[tuple[str, TaskName, int]]:
    """Give jobs of lost workers back to the queue (one transaction, job-id order)."""
    requeued = []
    with session_scope(state.settings.database_url) as session:
        for row in rows:
            if repository.requeue(session, row.id, enqueue_at=state.now):
                requeued.append((row.id, TaskName(row.task), row.priority))
    return requeued


def _resend_lost_deliveries(state: _Sweep) -> None:
    """4. Webhook deliveries overdue by three sweep intervals whose enqueue was lost are made due."""
    grace_s = state.settings.sweep_interval_s * 3
    resent = resend_lost(state.client, state.settings.database_url, state.now, grace_s)
    state.done["webhooks_resent"] += resent


def _forget_idempotency_keys(state: _Sweep) -> None:
    """5. Idempotency keys older than `idempotency_ttl_s` are forgotten."""
    cutoff = state.now - timedelta(seconds=state.settings.idempotency_ttl_s)
    with session_scope(state.settings.database_url) as session:
        expired_keys = session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    state.done["idempotency_keys_deleted"] += expired_keys.rowcount  # type: ignore[attr-defined]


def _advance_batches(state: _Sweep) -> None:
    """7. Batches complete, expire and end `cancelling` with nobody reading them (`shared.batches`)."""
    with session_scope(state.settings.database_url) as session:
        state.done["batches_moved"] += advance_active(session, state.client)


def _erase_past_retention(state: _Sweep) -> None:
    """8. Finished jobs past their retention lose their data (`shared.privacy.retention`): once per
    `RETENTION_PASS_S` across the fleet, in batches of `SWEEP_BATCH` (each its own transaction), at
    most `RETENTION_MAX_ROUNDS` per retention group (a backlog drains over the next passes)."""
    privacy = state.settings.privacy
    if not privacy.retention_enabled or not state.client.set(
        RETENTION_LOCK, "1", nx=True, ex=RETENTION_PASS_S
    ):
        return
    url = state.settings.database_url
    with session_scope(url) as session:
        plan = retention_plan(session, default_days=privacy.retention_days, now=state.now)
    for group in plan:
        for _ in range(RETENTION_MAX_ROUNDS):
            with session_scope(url) as session:
                due = job_queries.erasable(
                    session,
                    before=group.before,
                    limit=SWEEP_BATCH,
                    tenants=group.tenants,
                    exclude=group.exclude,
                )
                state.done["jobs_erased"] += len(repository.erase(session, due, now=state.now))
            if len(due) < SWEEP_BATCH:
                break


def _alive_workers(client: redis.Redis, workers: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The (queue, hostname) pairs whose heartbeat key exists."""
    ordered = sorted(workers)
    if not ordered:
        return set()
    with client.pipeline(transaction=False) as pipe:
        for queue, hostname in ordered:
            pipe.exists(heartbeat_key(queue, hostname))
        found = pipe.execute()
    return {pair for pair, exists in zip(ordered, found, strict=True) if exists}


def _not_yet_lost(
    missing_since: dict[tuple[str, str], float], missing: set[tuple[str, str]], patience_s: float
) -> set[tuple[str, str]]:
    """Missing workers still treated as alive (missing under `patience_s`); updates the memory."""
    now = time.monotonic()
    for pair in list(missing_since):
        if pair not in missing:
            del missing_since[pair]
    for pair in missing:
        missing_since.setdefault(pair, now)
    return {pair for pair in missing if now - missing_since[pair] < patience_s}


def _prune_outstanding(settings: Settings, client: redis.Redis) -> int:
    """6. Remove ids of terminal (or unknown) jobs from the oldest end of each outstanding set."""
    dropped = 0
    terminal = {s.value for s in TERMINAL_STATUSES}
    for queue in Queue:
        key = outstanding_key(queue)
        oldest: list[Any] = client.zrange(key, 0, SWEEP_BATCH - 1)
        ids = [m.decode() if isinstance(m, bytes) else str(m) for m in oldest]
        if not ids:
            continue
        with session_scope(settings.database_url) as session:
            status = {
                row.id: row.status
                for row in session.execute(select(Job.id, Job.status).where(Job.id.in_(ids)))
            }
        gone = [job_id for job_id in ids if status.get(job_id) in terminal or job_id not in status]
        if gone:
            dropped += int(client.zrem(key, *gone))
    return dropped


class Sweeper:
    """Runs `sweep` every `sweep_interval_s` on a daemon thread, when this worker holds the lock."""

    def __init__(self, settings: Settings, client: redis.Redis, celery: Celery, owner: str) -> None:
        self.settings = settings
        self.client = client
        self.celery = celery
        self.owner = owner
        self._missing_since: dict[tuple[str, str], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="textfleet-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def run_once(self) -> Counter[str] | None:
        """Sweep if no other worker swept within the interval; what was done, or None."""
        lock_ms = int(self.settings.sweep_interval_s * 1000 * 0.9)
        if not self.client.set(SWEEPER_LOCK, self.owner, nx=True, px=max(lock_ms, 100)):
            return None
        done = sweep(self.settings, self.client, self.celery, self._missing_since)
        if done:
            log.info("sweeper.swept", **done)
        return done

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.sweep_interval_s):
            try:
                self.run_once()
            except Exception as exc:  # database or Redis down: try again next interval
                log.warning("sweeper.failed", error=safe_message(exc))
