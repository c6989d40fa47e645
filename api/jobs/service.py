"""The jobs feature's service: `JobService` (built once per app, held on `app.state.jobs`) and cancel.

`JobService` is what the async routes and the intake batcher call: each operation opens its own
session from the app's session factory, in the threadpool, so an async route never holds a session
or a thread while it waits. Plain `def` routes get their session from `api.deps.SessionDep` and call
the functions of `api.jobs.reads` and `cancel_job` directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy.orm import Session

from api.jobs.creation import create_jobs
from api.jobs.idempotency import create_idempotent
from api.jobs.reads import OwnedJob, Sessions, get_job, job_not_found, normalize_id, read_jobs
from api.jobs.reads import read_job as _read
from shared.constants import DEFAULT_TENANT
from shared.db import repository
from shared.errors import ConflictError
from shared.lifecycle import Completion, end_jobs
from shared.queueing import redis_client
from shared.schemas import JobCreate, JobOut
from shared.settings import Settings

__all__ = ["JobService", "cancel_job"]

log = structlog.get_logger(__name__)


class JobService:
    """Creates and reads jobs for one app: its settings, its Celery producer, its session factory."""

    def __init__(self, settings: Settings, celery: Any, sessions: Sessions) -> None:
        self.settings = settings
        self.celery = celery
        self.sessions = sessions

    def create(
        self,
        bodies: Sequence[JobCreate],
        *,
        log_each: bool = False,
        tenant: str | Sequence[str] = DEFAULT_TENANT,
    ) -> list[JobOut]:
        """Store and enqueue validated jobs of `tenant` (one, or one per body), all or nothing
        (`api.jobs.creation.create_jobs`)."""
        with self.sessions() as session:
            return create_jobs(
                session,
                self.celery,
                bodies,
                chunk_size=self.settings.bulk_chunk_size,
                log_each=log_each,
                tenant=tenant,
            )

    def create_idempotent(
        self, bodies: Sequence[JobCreate], *, key: str, kind: str, tenant: str = DEFAULT_TENANT
    ) -> tuple[list[JobOut], bool]:
        """(jobs, replayed) under an Idempotency-Key (`api.jobs.idempotency.create_idempotent`)."""
        with self.sessions() as session:
            return create_idempotent(
                session,
                self.celery,
                bodies,
                key=key,
                kind=kind,
                ttl_s=self.settings.idempotency_ttl_s,
                chunk_size=self.settings.bulk_chunk_size,
                tenant=tenant,
            )

    def get(self, job_id: str, tenant: str | None = None) -> JobOut:
        """The job with `job_id`, of `tenant` if given (`api.jobs.reads.get_job`)."""
        with self.sessions() as session:
            return get_job(session, job_id, tenant)

    def read_many(self, job_ids: Sequence[str]) -> dict[str, OwnedJob]:
        """The jobs with these ids and their tenants, in one query (what the app's `JobReader` batches)."""
        return read_jobs(self.sessions, job_ids)

    def location(self, job_id: str) -> str:
        """The `Location` of a job: under `public_url` when set, else a path."""
        path = f"/v1/jobs/{job_id}"
        return f"{self.settings.public_url.rstrip('/')}{path}" if self.settings.public_url else path


# --- Cancel --------------------------------------------------------------------------------------


def cancel_job(session: Session, celery: Any, job_id: str, tenant: str | None = None) -> JobOut:
    """Cancel a queued or running job. A running one is also aborted inside its worker's engine (the
    workers listen on CANCEL_CHANNEL), freeing its KV cache. JobNotFoundError if unknown (or, with
    `tenant`, another tenant's: then nothing is written); ConflictError if it already finished."""
    job_id = normalize_id(job_id)
    if tenant is not None:
        found = repository.get(session, job_id, tenant=tenant) is not None
        session.rollback()
        if not found:
            raise job_not_found()
    client = redis_client(str(celery.conf.broker_url))
    ended = end_jobs(session, client, [Completion.canceled(job_id)])[0]  # written, then announced
    if ended is not None:
        log.info("job.canceled", job_id=job_id, was=ended.previous.value)
        return _read(session, job_id, tenant)
    current = _read(session, job_id, tenant)  # raises JobNotFoundError for an unknown id
    if not current.status.is_terminal:  # a worker moved it in between: rare
        raise ConflictError("job changed state while canceling; try again")
    raise ConflictError(f"job is already {current.status.value}")
