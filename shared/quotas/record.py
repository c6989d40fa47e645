"""The database's record of a tenant's budgets: each job's `reserved_tokens` (taken at admission) and
`completion_tokens` (what it used, written when it ended). What a window holds by the record is what
its ended jobs used plus what its unfinished jobs still reserve: the same number Redis keeps live
(`shared.quotas.budget`), which a test and `textfleet tenants limits show` compare."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from shared.db.models import Job
from shared.schemas import TERMINAL_STATUSES

__all__ = ["recorded_tokens"]

_TERMINAL = [status.value for status in TERMINAL_STATUSES]


def recorded_tokens(session: Session, tenant: str, since: datetime) -> int:
    """Generation tokens the tenant's jobs created since `since` hold by the record: used by the ended
    ones, reserved by the others (jobs admitted without a reservation count what they used)."""
    held = case(
        (Job.status.in_(_TERMINAL), func.coalesce(Job.completion_tokens, 0)),
        else_=func.coalesce(Job.reserved_tokens, 0),
    )
    total = session.scalar(
        select(func.coalesce(func.sum(held), 0)).where(Job.tenant_id == tenant, Job.created_at >= since)
    )
    return int(total or 0)
