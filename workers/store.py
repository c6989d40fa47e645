"""The worker's database path, batched: claims and completions from many task threads are gathered
into one transaction per batch, so a busy classify worker does a handful of commits per second
instead of two per job, and no model ever waits on the database.

Each statement is still a conditional update of one row (`shared.db.repository`), so a job is
claimed by one worker only (`queued` -> `running`), and its first terminal state wins. Completions go
through `shared.lifecycle.end_jobs` (the one path to a terminal state: the write, the `completed`
webhook event, the announcement). A claim records the `started` webhook event in its transaction, and
a job whose TTL passed ends `expired` there (`shared.lifecycle.write`); both are announced after the
commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
import structlog

from shared import lifecycle
from shared.db import repository, session_scope
from shared.db.conflicts import retry_conflicts
from shared.db.models import utcnow
from shared.lifecycle import Completion, Endings
from shared.schemas import JobStatus
from shared.webhooks.records import record_event
from workers.batching import MicroBatcher

__all__ = ["Claim", "JobStore"]

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


_ClaimItem = tuple[str, str]  # (job id, worker)


class JobStore:
    """Batched `claim`, `finish` and `requeue` over one database; thread-safe. `client` is the
    broker's Redis (ends are announced there, webhook deliveries enqueued)."""

    def __init__(
        self,
        database_url: str,
        client: redis.Redis,
        *,
        max_batch: int = 256,
        max_wait_ms: float = 2.0,
    ) -> None:
        self.database_url = database_url
        self.client = client
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

    def claim_many(self, job_ids: list[str], worker: str) -> list[Claim | None]:
        """`claim` for the jobs of one message, in one transaction on the calling thread (they are
        already together: no need to gather them with other threads' claims)."""
        return self._claim_batch([(job_id, worker) for job_id in job_ids])

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

    # --- batch bodies (run on the batchers' threads) ------------------------------------------------
    def _claim_batch(self, items: list[_ClaimItem]) -> list[Claim | None]:
        order = sorted(range(len(items)), key=lambda i: items[i][0])  # one lock order for every batch
        claims, endings = retry_conflicts(lambda: self._claim_rows([items[i] for i in order]))
        lifecycle.announce(self.client, endings)
        out: list[Claim | None] = [None] * len(items)
        for position, claim in zip(order, claims, strict=True):
            out[position] = claim
        return out

    def _claim_rows(self, items: list[_ClaimItem]) -> tuple[list[Claim | None], Endings]:
        now = utcnow()
        out: list[Claim | None] = []
        endings = Endings()
        with session_scope(self.database_url) as session:
            # one statement per worker named in the batch (a worker process names only itself)
            claimed: dict[str, repository.AnyRow] = {}
            for worker in {worker for _, worker in items}:
                ids = [job_id for job_id, named in items if named == worker]
                claimed.update(repository.claim_many(session, ids, worker, now=now))
            for job_id, worker in items:
                row = claimed.pop(job_id, None)  # a job named twice in a batch is claimed once
                if row is None:
                    out.append(None)
                    continue
                ttl = repository.ttl_passed(row.params, row.created_at, now)
                if ttl is not None:
                    expiry = Completion.expired(job_id, ttl, JobStatus.RUNNING, worker=worker)
                    lifecycle.write(session, [expiry], endings)
                else:
                    delivery = record_event(session, row, "started")
                    if delivery is not None:
                        endings.deliveries.append(delivery.id)
                out.append(
                    Claim(
                        job_id,
                        row.input,
                        row.params,
                        row.attempts,
                        row.created_at,
                        priority=row.priority,
                        expired=ttl is not None,
                    )
                )
        return out, endings

    def _finish_batch(self, items: list[Completion]) -> list[bool]:
        with session_scope(self.database_url) as session:
            ended = lifecycle.end_jobs(session, self.client, items)  # sorted by job id, one announce
        return [e is not None for e in ended]
