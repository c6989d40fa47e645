"""`GET /v1/usage`: the caller's tenant's usage over a period, by task or by day (issue 12)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BeforeValidator
from starlette.concurrency import run_in_threadpool

from api.deps import ReaderDep, UsageDep
from api.usage.protocol import GroupBy, UsageReport
from api.usage.service import period
from shared.constants import TENANT_MAX_CHARS, USAGE_DEFAULT_DAYS, USAGE_MAX_DAYS
from shared.errors import PermissionDeniedError
from shared.schemas import ErrorResponse

__all__ = ["router"]

router = APIRouter(prefix="/v1/usage", tags=["usage"])

_TENANT_PATTERN = rf"^[A-Za-z0-9._-]{{1,{TENANT_MAX_CHARS}}}$"  # shared.tenancy.store.validate_tenant_name


_DESCRIPTION = f"""Jobs of the tenant that reached a terminal state in `[from, to)` (by their `finished_at`),
with per status and per task counts, prompt and completion tokens, classified texts and run seconds:
the total and one group per task or per UTC day (days and tasks without jobs are left out).

A closed period never changes (a job counts when it ends), and what a job used is kept when its input
and result are erased. The period is at most {USAGE_MAX_DAYS} days; `from` must be before `to`. The
same figures are the `textfleet_usage_*` counters of `/metrics`, labelled by tenant."""


_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")


def _iso_only(value: Any) -> Any:
    """Refuse a bare number (pydantic would read it as a Unix timestamp): the document says ISO 8601."""
    if isinstance(value, str) and _NUMBER.match(value):
        raise ValueError("give a date and time in ISO 8601 (e.g. 2026-12-01T00:00:00Z), not a number")
    return value


#: A query parameter that is an ISO 8601 date-time (a bare number is refused).
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only)]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorResponse} for code in codes}


@router.get(
    "",
    response_model=UsageReport,
    summary="Usage of your tenant over a period",
    description=_DESCRIPTION,
    responses=_errors(401, 403, 422, 503),
)
async def get_usage(
    principal: ReaderDep,
    usage: UsageDep,
    from_: Annotated[
        IsoDateTime | None,
        Query(
            alias="from",
            description=f"Start of the period (inclusive), ISO 8601; without an offset, UTC. "
            f"Default: {USAGE_DEFAULT_DAYS} days before `to`.",
        ),
    ] = None,
    to: Annotated[
        IsoDateTime | None,
        Query(description="End of the period (exclusive), ISO 8601; without an offset, UTC. Default: now."),
    ] = None,
    group_by: Annotated[GroupBy, Query(description="Split the period's usage by `task` or by UTC `day`.")] = (
        GroupBy.TASK
    ),
    tenant: Annotated[
        str | None,
        Query(
            pattern=_TENANT_PATTERN,
            description="Another tenant's usage (admin keys only). Default: the key's own tenant.",
        ),
    ] = None,
) -> UsageReport:
    if tenant is not None and tenant != principal.tenant and not principal.is_admin:
        raise PermissionDeniedError("only an admin key may read another tenant's usage")
    start, end = period(from_, to)
    return await run_in_threadpool(usage.usage, tenant or principal.tenant, start, end, group_by)
