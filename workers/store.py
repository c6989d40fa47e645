"""The worker's database path, batched: claims and completions from many task threads are gathered
into one transaction per batch, so a busy classify worker does a handful of commits per second
instead of two per job, and no model ever waits on the database.

Each statement is still a conditional update of one row, so the guarantees are the repository's:
a job is claimed by one worker only (`queued` -> `running`), and its first terminal state wins.
Webhook events (`started` on claim, `completed` on a terminal state) are recorded in the same
transaction as the transition that causes them, so an event exists if and only if its transition
happened; their deliveries are enqueued after the commit by `on_deliveries`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.orm import Session

from shared.db import repository, session_scope
from shared.db.conflicts import retry_conflicts
from shared.db.models import Job, utcnow
from shared.schemas import JobStatus
from workers.batching import MicroBatcher

__all__ = ["Claim", "Completion", "JobStore"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Claim:
    """A claimed job: what its handler needs. `expired` jobs were not run (their TTL had passed)."""

    job_id: str
    input: dict[str, Any]
    params: dict[str, Any]
    attempts: int
    created_at: datetime
    priority: int = 5
    expired: bool = False
    webhook: bool = False


@dataclass(frozen=True)
class Completion:
    """A terminal state to write."""

    job_id: str
    status: JobStatus
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    usage: dict[str, int] | None = None
    webhook: bool = False  # the job has a webhook: record its `completed` event
    worker: str | None = None  # the claimant; a completion from anyone else is ignored
    task: str | None = None  # given: the terminal state is announced (see JobStore.on_finished)


_ClaimItem = tuple[str, str]  # (job id, worker)
DeliveryHook = Callable[[list[str]], None]
#: called after each completion batch commits with the (job id, task, status) that were written
FinishedHook = Callable[[list[tuple[str, str, str]]], None]


def record_webhook(session: Session, job_id: str, event: str) -> list[str]:
    """Record a webhook event of a job in the caller's transaction; the new delivery ids (0 or 1)."""
    job = session.get(Job, job_id)
    if job is None or not job.webhook:
        return []
    from shared.webhooks import record_event

    delivery = record_event(session, job, event)
    return [delivery.id] if delivery is not None else []


class JobStore:
    """Batched `claim`, `finish` and `requeue` over one database; thread-safe."""

    def __init__(
        self,
        database_url: str,
        *,
        max_batch: int = 256,
        max_wait_ms: float = 2.0,
        on_deliveries: DeliveryHook | None = None,
        on_finished: FinishedHook | None = None,
    ) -> None:
        self.database_url = database_url
        self.on_deliveries = on_deliveries
        self.on_finished = on_finished
        self._claims: MicroBatcher[_ClaimItem, Claim | None] = MicroBatcher(
            self._claim_batch, max_batch=max_batch, max_wait_ms=max_wait_ms, name="textfleet-claims"
        )
        self._finishes: MicroBatcher[Completion, bool] = MicroBatcher(
            self._finish_batch, max_batch=max_batch, max_wait_ms=max_wait_ms, name="textfleet-completions"
        )

    def claim(self, job_id: str, worker: str) -> Claim | None:
        """Move the job `queued` -> `running` for `worker`; None if it was not queued. A job whose
        `params.ttl_s` has passed ends `expired` instead and comes back with `expired=True`."""
        return self._claims.submit((job_id, worker)).result()

    def finish(self, completion: Completion) -> bool:
        """Write a terminal state if the job is still running; False if another one was written first."""
        return self._finishes.submit(completion).result()

    def requeue(self, job_id: str, *, delay_s: float = 0.0) -> bool:
        """Give a running job back to the queue (`running` -> `queued`); the caller re-sends its message."""
        with session_scope(self.database_url) as session:
            return repository.requeue(session, job_id, enqueue_at=utcnow() + timedelta(seconds=delay_s))

    def close(self) -> None:
        self._claims.close()
        self._finishes.close()

    def _deliver(self, ids: list[str]) -> None:
        if ids and self.on_deliveries is not None:
            try:
                self.on_deliveries(ids)
            except Exception as exc:  # the sweeper re-sends due deliveries
                log.warning("webhook.enqueue_failed", count=len(ids), error=str(exc))

    # --- batch bodies (run on the batchers' threads) ------------------------------------------------
    def _claim_batch(self, items: list[_ClaimItem]) -> list[Claim | None]:
        order = sorted(range(len(items)), key=lambda i: items[i][0])  # one lock order for every batch
        claims, deliveries = retry_conflicts(lambda: self._claim_rows([items[i] for i in order]))
        self._deliver(deliveries)
        out: list[Claim | None] = [None] * len(items)
        for position, claim in zip(order, claims, strict=True):
            out[position] = claim
        return out

    def _claim_rows(self, items: list[_ClaimItem]) -> tuple[list[Claim | None], list[str]]:
        now = utcnow()
        out: list[Claim | None] = []
        deliveries: list[str] = []
        with session_scope(self.database_url) as session:
            for job_id, worker in items:
                row = repository.claim(session, job_id, worker, now=now)
                if row is None:
                    out.append(None)
                    continue
                ttl = repository.ttl_passed(row.params, row.created_at, now)
                expired = ttl is not None
                if ttl is not None:
                    repository.finish(
                        session, job_id, JobStatus.EXPIRED, error=repository.expired_error(ttl), worker=worker
                    )
                if row.webhook:
                    deliveries += record_webhook(session, job_id, "completed" if expired else "started")
                out.append(
                    Claim(
                        job_id,
                        row.input,
                        row.params,
                        row.attempts,
                        row.created_at,
                        priority=row.priority,
                        expired=expired,
                        webhook=bool(row.webhook),
                    )
                )
        return out, deliveries

    def _finish_batch(self, items: list[Completion]) -> list[bool]:
        order = sorted(range(len(items)), key=lambda i: items[i].job_id)  # one lock order for every batch
        sorted_won, deliveries = retry_conflicts(lambda: self._finish_rows([items[i] for i in order]))
        won = [False] * len(items)
        for position, first in zip(order, sorted_won, strict=True):
            won[position] = first
        self._deliver(deliveries)
        finished = [
            (c.job_id, c.task, c.status.value)
            for c, first in zip(items, won, strict=True)
            if first and c.task
        ]
        if finished and self.on_finished is not None:
            try:
                self.on_finished(finished)  # one Redis round trip for the whole batch
            except Exception as exc:  # waiters time out and re-read; the sweeper prunes the sets
                log.warning("job.announce_failed", count=len(finished), error=str(exc))
        return won

    def _finish_rows(self, items: list[Completion]) -> tuple[list[bool], list[str]]:
        deliveries: list[str] = []
        with session_scope(self.database_url) as session:
            won = [
                repository.finish(
                    session,
                    c.job_id,
                    c.status,
                    result=c.result,
                    error=c.error,
                    usage=c.usage,
                    worker=c.worker,
                )
                is not None
                for c in items
            ]
            for completion, first in zip(items, won, strict=True):
                if first and completion.webhook:
                    deliveries += record_webhook(session, completion.job_id, "completed")
        return won, deliveries
