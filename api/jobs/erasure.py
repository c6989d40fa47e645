"""`DELETE /v1/jobs/{id}`: erase one job's data on request (issue 12, privacy).

What is erased is what retention erases (`shared.db.repository.erase`): the input, params, metadata,
result and error text; the row stays with its task, status, tenant, tokens and timings (the
accounting), and `erased_at` says when. Semantics:

* a finished job is erased at once;
* a job not yet finished (queued or running) is canceled first, exactly as `POST .../cancel` does
  (a running generation is aborted in its engine), then erased: one call suffices, whatever the
  job's state, and its worker can no longer write a result (the first terminal state wins);
* erasing an erased job again changes nothing and answers the same (idempotent);
* another tenant's job answers 404 exactly like a job that does not exist.

The answer is the job as reads show it from then on: `erased_at` set, data gone.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.orm import Session

from api.jobs.reads import job_not_found, normalize_id, read_job
from api.visibility import visible_tenant
from shared.db import repository
from shared.db.models import utcnow
from shared.errors import ConflictError
from shared.lifecycle import Completion, end_jobs
from shared.queueing import redis_client
from shared.schemas import JobOut, JobStatus
from shared.tenancy.principal import Principal

__all__ = ["ERASE_ATTEMPTS", "erase_job"]

#: Rounds of cancel-then-erase before giving up on a job a worker keeps moving (requeue races).
ERASE_ATTEMPTS = 3

log = structlog.get_logger(__name__)


def erase_job(session: Session, celery: Any, job_id: str, principal: Principal) -> JobOut:
    """Cancel (if need be) and erase the job `job_id` of `principal`'s tenant (any tenant's for an
    admin); the erased job. JobNotFoundError when there is none the principal may see;
    ConflictError in the rare case the job kept changing state (a worker requeued it) meanwhile."""
    job_id = normalize_id(job_id)
    for _ in range(ERASE_ATTEMPTS):
        job = repository.get(session, job_id, tenant=visible_tenant(principal))
        if job is None:
            session.rollback()
            raise job_not_found()
        status, erased_at = JobStatus(job.status), job.erased_at
        session.rollback()  # end_jobs runs its own transaction
        if erased_at is not None:
            return read_job(session, job_id)
        if not status.is_terminal:
            client = redis_client(str(celery.conf.broker_url))
            end_jobs(session, client, [Completion.canceled(job_id)])  # or a finish came first
        erased = repository.erase(session, [job_id], now=utcnow())
        session.commit()
        if erased:
            log.info("job.erased", job_id=job_id, was=status.value)
            return read_job(session, job_id)
    raise ConflictError("job changed state while it was being erased; try again")
