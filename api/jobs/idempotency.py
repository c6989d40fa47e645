"""`Idempotency-Key`: the same key and request within `idempotency_ttl_s` return the original jobs;
the same key with a different request is a conflict. The key is stored in the transaction that
stores the jobs (`api.jobs.creation.create_jobs`), so two racing requests cannot both create."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.jobs.creation import IdempotentReplayError, create_jobs
from api.jobs.reads import with_deliveries
from shared.constants import DEFAULT_TENANT
from shared.db.models import IdempotencyKey, Job, utcnow
from shared.errors import ConflictError
from shared.schemas import JobCreate, JobOut

__all__ = ["create_idempotent", "replay", "request_hash"]


def request_hash(bodies: Sequence[JobCreate], kind: str) -> str:
    """A digest of what was submitted (validated content), for Idempotency-Key comparison."""
    canonical = json.dumps(
        [kind, [b.model_dump(mode="json") for b in bodies]], sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def replay(session: Session, key: str, digest: str, ttl_s: float) -> list[JobOut] | None:
    """The jobs an Idempotency-Key already created, if it was used within `ttl_s` with the same request;
    ConflictError if it was used with a different one; None if it is unused (or expired, then freed)."""
    seen = session.get(IdempotencyKey, (DEFAULT_TENANT, key))  # TODO(isolation): the caller's tenant
    if seen is None:
        return None
    if seen.created_at < utcnow() - timedelta(seconds=ttl_s):
        session.delete(seen)
        session.flush()
        return None
    if seen.request_hash != digest:
        raise ConflictError("this Idempotency-Key was already used with a different request body")
    rows = {job.id: job for job in session.scalars(select(Job).where(Job.id.in_(seen.job_ids)))}
    return with_deliveries(session, [rows[job_id] for job_id in seen.job_ids if job_id in rows])


def create_idempotent(
    session: Session,
    celery: Any,
    bodies: Sequence[JobCreate],
    *,
    key: str,
    kind: str,
    ttl_s: float,
    chunk_size: int = 1000,
) -> tuple[list[JobOut], bool]:
    """Create jobs under an Idempotency-Key: (jobs, replayed). The same key with the same request within
    `ttl_s` returns the original jobs (replayed=True); with a different request, ConflictError."""
    digest = request_hash(bodies, kind)
    try:
        earlier = replay(session, key, digest, ttl_s)
        if earlier is not None:
            return earlier, True
        session.commit()  # an expired key was freed
    finally:
        session.rollback()
    try:
        return create_jobs(
            session, celery, bodies, chunk_size=chunk_size, idempotency=(key, digest, ttl_s)
        ), False
    except IdempotentReplayError:
        try:
            earlier = replay(session, key, digest, ttl_s)
        finally:
            session.rollback()
        if earlier is None:  # freed again in between: vanishingly rare
            raise ConflictError("this Idempotency-Key is being used concurrently; retry") from None
        return earlier, True
