"""The fleet-wide sweeper: no job is lost between the database and the queue, or with a dead worker.

Every worker runs a `Sweeper` thread; a Redis lock lets one of them sweep per interval. A sweep:

1. expires `queued` jobs whose `params.ttl_s` has passed (they never run);
2. re-sends `queued` jobs whose message is older than `requeue_after_s` (a crash between insert and
   enqueue, or a Redis restart, lost it; a duplicate is harmless: the first claim wins);
3. recovers `running` jobs whose worker vanished (no heartbeat) or that ran past their time limit
   plus `running_grace_s`: back to the queue while attempts remain, else `failed`
   (`worker_lost` / `timeout`);
4. re-sends webhook deliveries that are overdue and in neither Redis set (their enqueue was lost; one
   waiting behind a backlog is never re-sent);
5. forgets idempotency keys older than `idempotency_ttl_s`;
6. drops terminal jobs left in the outstanding sets (an announce that never reached Redis).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import redis
import structlog
from celery import Celery
from sqlalchemy import delete, func, select, update

from shared.batches import advance_active
from shared.constants import CANCEL_CHANNEL, SWEEPER_LOCK, TASK_QUEUES, Queue, TaskName, outstanding_key
from shared.db import repository, session_scope
from shared.db.models import IdempotencyKey, Job, WebhookDelivery, utcnow
from shared.events import announce_terminal
from shared.queueing import send_jobs
from shared.schemas import TERMINAL_STATUSES, JobStatus
from shared.settings import Settings
from workers.heartbeat import heartbeat_key
from workers.store import record_webhook

__all__ = ["Sweeper", "sweep"]

log = structlog.get_logger(__name__)

BATCH = 1000


def sweep(
    settings: Settings,
    client: redis.Redis,
    celery: Celery,
    missing_since: dict[tuple[str, str], float] | None = None,
) -> Counter[str]:
    """One sweep of the whole fleet; counts of what it did, by kind.

    With `missing_since` (kept by a `Sweeper` between sweeps), a worker counts as vanished only once its
    heartbeat has been missing for two heartbeat periods: a Redis restart drops every heartbeat key for
    a moment, and running jobs must not be taken from live workers then. Without it (tests), at once."""
    now = utcnow()
    done: Counter[str] = Counter()
    url = settings.database_url
    terminal: list[tuple[str, str, str]] = []  # (job id, task, status) to announce
    deliveries: list[str] = []
    resend: list[tuple[str, TaskName, int]] = []
    cancel: list[str] = []

    with session_scope(url) as session:
        # 1. TTL expiry of queued jobs.
        rows = session.execute(
            select(Job.id, Job.task, Job.created_at, Job.params, Job.webhook)
            .where(Job.status == JobStatus.QUEUED.value, Job.params["ttl_s"].as_float().is_not(None))
            .limit(BATCH)
        ).all()
        for row in rows:
            ttl = float(row.params["ttl_s"])
            if row.created_at + timedelta(seconds=ttl) >= now:
                continue
            error = {"code": "expired", "message": f"not started within ttl_s={ttl}"}
            if repository.finish(session, row.id, JobStatus.EXPIRED, error=error, expected=JobStatus.QUEUED):
                done["expired"] += 1
                terminal.append((row.id, row.task, JobStatus.EXPIRED.value))
                if row.webhook:
                    deliveries += record_webhook(session, row.id, "completed")

        # 2. Re-send queued jobs whose message may be gone.
        cutoff = now - timedelta(seconds=settings.requeue_after_s)
        rows = session.execute(
            select(Job.id, Job.task, Job.priority)
            .where(
                Job.status == JobStatus.QUEUED.value, func.coalesce(Job.enqueued_at, Job.created_at) < cutoff
            )
            .order_by(Job.id)
            .limit(BATCH)
        ).all()
        if rows:
            session.execute(
                update(Job)
                .where(Job.id.in_([r.id for r in rows]), Job.status == JobStatus.QUEUED.value)
                .values(enqueued_at=now)
                .execution_options(synchronize_session=False)
            )
            resend += [(r.id, TaskName(r.task), r.priority) for r in rows]
            done["requeued_stale"] += len(rows)

        # 3. Running jobs of vanished workers, or past their time limit.
        rows = session.execute(
            select(
                Job.id,
                Job.task,
                Job.worker,
                Job.started_at,
                Job.params,
                Job.attempts,
                Job.priority,
                Job.webhook,
            )
            .where(Job.status == JobStatus.RUNNING.value)
            .limit(BATCH)
        ).all()
        pairs = {(TASK_QUEUES[TaskName(r.task)].value, r.worker or "") for r in rows}
        alive = _alive_workers(client, pairs)
        if missing_since is not None:
            alive |= _not_yet_lost(missing_since, pairs - alive, settings.worker_heartbeat_s * 2)
        for row in rows:
            limit = float(row.params.get("timeout_s") or settings.default_timeout_s)
            overdue = (
                row.started_at is not None
                and row.started_at + timedelta(seconds=limit + settings.running_grace_s) < now
            )
            lost = (TASK_QUEUES[TaskName(row.task)].value, row.worker or "") not in alive
            if not (overdue or lost):
                continue
            if overdue or row.attempts >= settings.max_attempts:
                code, message = (
                    ("timeout", f"ran past timeout_s={limit}")
                    if overdue
                    else (
                        "worker_lost",
                        f"its worker vanished on attempt {row.attempts} of {settings.max_attempts}",
                    )
                )
                if repository.finish(
                    session, row.id, JobStatus.FAILED, error={"code": code, "message": message}
                ):
                    done[f"failed_{code}"] += 1
                    terminal.append((row.id, row.task, JobStatus.FAILED.value))
                    cancel.append(row.id)
                    if row.webhook:
                        deliveries += record_webhook(session, row.id, "completed")
            else:
                back = session.execute(
                    update(Job)
                    .where(Job.id == row.id, Job.status == JobStatus.RUNNING.value)
                    .values(status=JobStatus.QUEUED.value, worker=None, started_at=None, enqueued_at=now)
                    .execution_options(synchronize_session=False)
                )
                if back.rowcount:  # type: ignore[attr-defined]
                    done["recovered_running"] += 1
                    resend.append((row.id, TaskName(row.task), row.priority))

        # 4. Overdue webhook deliveries (candidates; only those Redis does not hold are re-sent).
        from shared.webhooks import due_deliveries

        overdue_deliveries = due_deliveries(session, now, settings.sweep_interval_s * 3)

        # 5. Old idempotency keys.
        expired_keys = session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.created_at < now - timedelta(seconds=settings.idempotency_ttl_s)
            )
        )
        done["idempotency_keys_deleted"] += expired_keys.rowcount  # type: ignore[attr-defined]

    # After the commit: talk to Redis.
    if resend:
        send_jobs(celery, resend)
    for job_id, task, status in terminal:
        announce_terminal(client, job_id, task, status)
    for job_id in cancel:
        client.publish(CANCEL_CHANNEL, job_id)
    if overdue_deliveries:
        # A delivery waiting behind a backlog is still in the due (or leased) set: never re-sent. Only
        # one in neither set lost its enqueue (a crash or a Redis error right after the commit).
        from shared import webhook_queue

        unqueued = webhook_queue.missing(client, overdue_deliveries)
        if unqueued:  # read again: one delivered (and settled) since the first read is not lost
            with session_scope(url) as session:
                unqueued = list(
                    session.scalars(
                        select(WebhookDelivery.id).where(
                            WebhookDelivery.id.in_(unqueued), WebhookDelivery.status == "pending"
                        )
                    )
                )
        done["webhooks_resent"] += len(unqueued)
        deliveries += unqueued
    if deliveries:
        from shared.webhooks import enqueue_deliveries

        enqueue_deliveries(celery, deliveries)
    done["outstanding_dropped"] += _prune_outstanding(settings, client)
    with session_scope(url) as session:  # batches complete, expire and end cancelling unread (issue 13)
        done["batches_moved"] += advance_active(session, client)
    return +done


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
    """Remove ids of terminal (or unknown) jobs from the oldest end of each outstanding set."""
    dropped = 0
    terminal = {s.value for s in TERMINAL_STATUSES}
    for queue in Queue:
        key = outstanding_key(queue)
        oldest: list[Any] = client.zrange(key, 0, BATCH - 1)
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
                log.warning("sweeper.failed", error=str(exc))
