"""The usage query (issue 12): what a tenant's jobs that ended in a period used, summed in SQL.

A job counts in the period that holds its `finished_at` (its terminal state: usage accrues when a job
ends, so a closed period never changes), `start <= finished_at < end`. One `GROUP BY` of the accounting
columns (`shared.usage` says what each means) per (task, status) and, by day, per UTC calendar day of
`finished_at`; the index `ix_jobs_tenant_finished` serves the range. Only the accounting columns are
read: never `input` or `result`, which a retention purge erases.

The two expressions that differ by dialect (PostgreSQL and SQLite are supported):

- run seconds: PostgreSQL `EXTRACT(EPOCH FROM finished_at - started_at)`; SQLite, which stores
  timestamps as UTC text, `(julianday(finished_at) - julianday(started_at)) * 86400` (exact to about
  0.1 ms per job);
- the UTC day: PostgreSQL `to_char(timezone('UTC', finished_at), 'YYYY-MM-DD')`; SQLite
  `strftime('%Y-%m-%d', finished_at)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, cast, extract, func, select
from sqlalchemy.orm import Session

from shared.db.models import Job
from shared.schemas import TERMINAL_STATUSES

__all__ = ["UsageCell", "usage_cells"]


@dataclass(frozen=True)
class UsageCell:
    """The sums over one (day, task, status) of a tenant's ended jobs (`day` None when not by day)."""

    day: str | None
    task: str
    status: str
    jobs: int
    prompt_tokens: int
    completion_tokens: int
    classified_texts: int
    run_seconds: float


def _run_seconds(dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return extract("epoch", Job.finished_at - Job.started_at)
    if dialect == "sqlite":
        return (func.julianday(Job.finished_at) - func.julianday(Job.started_at)) * 86400.0
    raise NotImplementedError(f"usage needs PostgreSQL or SQLite, not {dialect}")


def _utc_day(dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", Job.finished_at), "YYYY-MM-DD")
    if dialect == "sqlite":
        return func.strftime("%Y-%m-%d", Job.finished_at)
    raise NotImplementedError(f"usage needs PostgreSQL or SQLite, not {dialect}")


def usage_cells(
    session: Session, tenant: str, start: datetime, end: datetime, *, by_day: bool = False
) -> list[UsageCell]:
    """The usage of `tenant`'s jobs that ended in `[start, end)`, one cell per (day,) task and status
    that has any, in key order."""
    dialect = session.get_bind().dialect.name
    day = _utc_day(dialect).label("day")
    keys: list[ColumnElement[Any]] = [day] if by_day else []
    keys += [Job.task.expression, Job.status.expression]
    statement = (
        select(
            *keys,
            func.count().label("jobs"),
            func.coalesce(func.sum(Job.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(Job.completion_tokens), 0).label("completion_tokens"),
            func.coalesce(func.sum(Job.classified_texts), 0).label("classified_texts"),
            cast(func.coalesce(func.sum(_run_seconds(dialect)), 0), Float).label("run_seconds"),
        )
        .where(
            Job.tenant_id == tenant,
            Job.finished_at >= start,
            Job.finished_at < end,
            Job.status.in_([s.value for s in TERMINAL_STATUSES]),
        )
        .group_by(*keys)
        .order_by(*keys)
    )
    return [
        UsageCell(
            day=row.day if by_day else None,
            task=row.task,
            status=row.status,
            jobs=int(row.jobs),
            prompt_tokens=int(row.prompt_tokens),
            completion_tokens=int(row.completion_tokens),
            classified_texts=int(row.classified_texts),
            run_seconds=float(row.run_seconds),
        )
        for row in session.execute(statement)
    ]
