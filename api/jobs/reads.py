"""Reading jobs as clients see them: id checks, one job, a page of jobs, many jobs in one query.

Every read ends its transaction (`rollback`) before it returns, so no connection stays checked out
while a response is written or a waiter waits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared.constants import TaskName
from shared.db import job_queries, repository
from shared.db.models import Job
from shared.errors import InvalidInputError, JobNotFoundError
from shared.schemas import JobList, JobOut, JobStatus
from shared.webhooks import deliveries_for

__all__ = [
    "OwnedJob",
    "Sessions",
    "check_cursor",
    "get_job",
    "job_not_found",
    "list_jobs",
    "normalize_id",
    "read_job",
    "read_jobs",
    "with_deliveries",
]

#: The app's session factory (one per app, built by `api.app.create_app`).
Sessions = sessionmaker[Session]

_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


class OwnedJob(NamedTuple):
    """A job as clients see it, with the tenant it belongs to (what a coalesced read returns)."""

    tenant: str
    job: JobOut


def job_not_found() -> JobNotFoundError:
    """The one answer for a job id that names no job the caller may see: none exists, or it is another
    tenant's (the two must not be told apart)."""
    return JobNotFoundError("no job with this id")


def normalize_id(job_id: str) -> str:
    """The canonical (upper-case) form of a job id; JobNotFoundError for anything that is not a ULID."""
    canonical = job_id.upper()
    if not _ULID.match(canonical):
        raise JobNotFoundError("no job with this id (a job id is a 26-character ULID)")
    return canonical


def check_cursor(cursor: str | None) -> str | None:
    """A list cursor is the id of the last job of the previous page."""
    if cursor is None:
        return None
    canonical = cursor.upper()
    if not _ULID.match(canonical):
        raise InvalidInputError("cursor is not a valid job id", field="cursor", code="validation_error")
    return canonical


def with_deliveries(session: Session, jobs: Sequence[Job]) -> list[JobOut]:
    """Jobs as clients see them, with the delivery state of their webhook events (one query)."""
    out = [repository.to_out(job) for job in jobs]
    hooked = [job.id for job in jobs if job.webhook]
    if hooked:
        deliveries = deliveries_for(session, hooked)
        for item in out:
            item.webhook_deliveries = deliveries.get(item.id, [])
    return out


def read_job(session: Session, job_id: str, tenant: str | None = None) -> JobOut:
    """The job's current row, read fresh (`job_id` canonical); with `tenant`, only that tenant's (another
    tenant's is not found). The transaction is ended so no connection stays checked out."""
    session.expire_all()
    try:
        job = repository.get(session, job_id, tenant=tenant)
        if job is None:
            raise job_not_found()
        return with_deliveries(session, [job])[0]
    finally:
        session.rollback()


def get_job(session: Session, job_id: str, tenant: str | None = None) -> JobOut:
    """The job with `job_id` (of `tenant`, when given); JobNotFoundError if there is none (or the id is
    malformed)."""
    return read_job(session, normalize_id(job_id), tenant)


def read_jobs(sessions: Sessions, job_ids: Sequence[str]) -> dict[str, OwnedJob]:
    """The jobs with these ids and their tenants (missing ones left out), read fresh in one query; no
    connection kept. The caller filters by tenant (a coalesced read serves several tenants' waits)."""
    session = sessions()
    try:
        rows = session.scalars(select(Job).where(Job.id.in_(list(job_ids)))).all()
        return {
            job.id: OwnedJob(row.tenant_id, job)
            for row, job in zip(rows, with_deliveries(session, rows), strict=True)
        }
    finally:
        session.rollback()
        session.close()


def list_jobs(
    session: Session,
    *,
    limit: int,
    max_limit: int,
    cursor: str | None = None,
    status: JobStatus | None = None,
    task: TaskName | None = None,
    tenant: str | None = None,
) -> JobList:
    """A page of jobs, newest first, optionally filtered by status and task; with `tenant`, only that
    tenant's."""
    if limit > max_limit:
        raise InvalidInputError(f"limit must be at most {max_limit}", field="limit", code="validation_error")
    try:
        rows, next_cursor = job_queries.list_jobs(
            session,
            limit=limit,
            cursor=check_cursor(cursor),
            status=status,
            task=task.value if task is not None else None,
            tenant=tenant,
        )
        return JobList(items=with_deliveries(session, rows), next_cursor=next_cursor)
    finally:
        session.rollback()
