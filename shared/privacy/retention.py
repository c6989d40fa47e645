"""Retention: when a finished job's data is erased, per tenant.

A job's input, params, metadata, result and error text are kept `retention_days` after it ends
(`shared.privacy.settings`), or its tenant's own `tenants.retention_days` when set; then the sweeper
erases them through `shared.db.repository.erase` (the row stays, for accounting). `retention_plan`
says which jobs are due: one group per distinct retention, so a sweep asks the database once per
group however many tenants there are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.tenant_models import Tenant

__all__ = ["RetentionGroup", "retention_plan"]


@dataclass(frozen=True)
class RetentionGroup:
    """Jobs that ended before `before` are due: of `tenants`, or (None) of every tenant but `exclude`."""

    before: datetime
    tenants: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()


def retention_plan(session: Session, *, default_days: int, now: datetime) -> list[RetentionGroup]:
    """The groups of jobs due for erasure at `now`: the tenants with their own retention, grouped
    by it, then every other tenant under `default_days`."""
    overrides = session.execute(
        select(Tenant.id, Tenant.retention_days).where(Tenant.retention_days.is_not(None))
    ).all()
    by_days: dict[int, list[str]] = {}
    for tenant, days in overrides:
        by_days.setdefault(max(0, days or 0), []).append(tenant)
    groups = [
        RetentionGroup(now - timedelta(days=days), tenants=tuple(sorted(tenants)))
        for days, tenants in sorted(by_days.items())
    ]
    exclude = tuple(sorted(tenant for tenant, _ in overrides))
    groups.append(RetentionGroup(now - timedelta(days=default_days), exclude=exclude))
    return groups
