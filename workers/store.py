"""The worker's database path, batched: claims and completions from many task threads are gathered
into one transaction per batch, so a busy classify worker does a handful of commits per second
instead of two per job, and no model ever waits on the database.

Each statement is still a conditional update of one row, so the guarantees are the repository's:
a job is claimed by one worker only (`queued` -> `running`), and its first terminal state wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import update

from shared.db import repository, session_scope
from shared.db.models import Job, utcnow
from shared.schemas import JobStatus
from workers.batching import MicroBatcher

__all__ = ["Claim", "Completion", "JobStore"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Claim:
    """A claimed job: what its handler needs."""

    job_id: str
    input: dict[str, Any]
    params: dict[str, Any]


@dataclass(frozen=True)
class Completion:
    """A terminal state to write."""

    job_id: str
    status: JobStatus
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    usage: dict[str, int] | None = None


_ClaimItem = tuple[str, str]  # (job id, worker)


class JobStore:
    """Batched `claim` and `finish` over one database; thread-safe."""

    def __init__(self, database_url: str, *, max_batch: int = 256, max_wait_ms: float = 2.0) -> None:
        self.database_url = database_url
        self._claims: MicroBatcher[_ClaimItem, Claim | None] = MicroBatcher(
            self._claim_batch, max_batch=max_batch, max_wait_ms=max_wait_ms, name="textfleet-claims"
        )
        self._finishes: MicroBatcher[Completion, bool] = MicroBatcher(
            self._finish_batch, max_batch=max_batch, max_wait_ms=max_wait_ms, name="textfleet-completions"
        )

    def claim(self, job_id: str, worker: str) -> Claim | None:
        """Move the job `queued` -> `running` for `worker`; None if it was not queued."""
        return self._claims.submit((job_id, worker)).result()

    def finish(self, completion: Completion) -> bool:
        """Write a terminal state if the job is still running; False if another one was written first."""
        return self._finishes.submit(completion).result()

    def close(self) -> None:
        self._claims.close()
        self._finishes.close()

    # --- batch bodies (run on the batchers' threads) ------------------------------------------------
    def _claim_batch(self, items: list[_ClaimItem]) -> list[Claim | None]:
        now = utcnow()
        out: list[Claim | None] = []
        with session_scope(self.database_url) as session:
            for job_id, worker in items:
                row = session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status == JobStatus.QUEUED.value)
                    .values(
                        status=JobStatus.RUNNING.value,
                        started_at=now,
                        attempts=Job.attempts + 1,
                        worker=worker,
                    )
                    .returning(Job.input, Job.params)
                    .execution_options(synchronize_session=False)
                ).first()
                out.append(Claim(job_id, row.input, row.params) if row is not None else None)
        return out

    def _finish_batch(self, items: list[Completion]) -> list[bool]:
        with session_scope(self.database_url) as session:
            return [
                repository.finish(session, c.job_id, c.status, result=c.result, error=c.error, usage=c.usage)
                for c in items
            ]
