"""Reads of the jobs table beyond loading one job: a tenant's page of jobs (`GET /v1/jobs`), a job's
tenant, and the sweeper's candidates (expiry, time limits, retention). Loading one job and every
write of the table are in `shared.db.repository`."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.constants import DEFAULT_TENANT
from shared.db.models import Job
from shared.db.repository import TERMINAL_VALUES, AnyRow
from shared.schemas import JobStatus

__all__ = ["erasable", "list_jobs", "queued_with_ttl", "running_jobs", "tenant_of"]


def tenant_of(session: Session, job_id: str) -> str:
    """The tenant of the job `job_id` (the default tenant's if there is no such job)."""
    return session.scalar(select(Job.tenant_id).where(Job.id == job_id)) or DEFAULT_TENANT


def list_jobs(
    session: Session,
    *,
    limit: int,
    cursor: str | None = None,
    status: JobStatus | None = None,
    task: str | None = None,
    tenant: str | None = None,
) -> tuple[Sequence[Job], str | None]:
    """A page of jobs, newest first, and the cursor of the next page (None on the last); with `tenant`,
    only that tenant's jobs."""
    query = select(Job).order_by(Job.id.desc()).limit(limit + 1)
    if tenant is not None:
        query = query.where(Job.tenant_id == tenant)
    if cursor is not None:
        query = query.where(Job.id < cursor)
    if status is not None:
        query = query.where(Job.status == status.value)
    if task is not None:
        query = query.where(Job.task == task)
    rows = session.scalars(query).all()
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].id
    return rows, None


def queued_with_ttl(session: Session, *, limit: int) -> Sequence[AnyRow]:
    """Up to `limit` `queued` jobs that have a `params.ttl_s` (id, task, created_at, params): the
    sweeper's expiry candidates (`ttl_passed` decides)."""
    return session.execute(
        select(Job.id, Job.task, Job.created_at, Job.params)
        .where(Job.status == JobStatus.QUEUED.value, Job.params["ttl_s"].as_float().is_not(None))
        .limit(limit)
    ).all()


def running_jobs(session: Session, *, limit: int) -> Sequence[AnyRow]:
    """Up to `limit` `running` jobs (id, task, worker, started_at, params, attempts, priority): the
    sweeper checks their workers and time limits."""
    return session.execute(
        select(Job.id, Job.task, Job.worker, Job.started_at, Job.params, Job.attempts, Job.priority)
        .where(Job.status == JobStatus.RUNNING.value)
        .limit(limit)
    ).all()


def erasable(
    session: Session,
    *,
    before: datetime,
    limit: int,
    tenants: Collection[str] | None = None,
    exclude: Collection[str] = (),
) -> list[str]:
    """Ids of up to `limit` finished, not yet erased jobs that ended before `before` (oldest first), of
    `tenants` only, or of every tenant but `exclude`: the retention sweep's candidates."""
    query = select(Job.id).where(
        Job.status.in_(TERMINAL_VALUES),
        Job.erased_at.is_(None),
        func.coalesce(Job.finished_at, Job.created_at) < before,
    )
    if tenants is not None:
        query = query.where(Job.tenant_id.in_(list(tenants)))
    elif exclude:
        query = query.where(Job.tenant_id.not_in(list(exclude)))
    return list(session.scalars(query.order_by(Job.id).limit(limit)))
