"""`/v1/quotas`: the caller's tenant's limits (defaults with its overrides) and what it holds now."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import PrincipalDep, QuotasDep
from api.quotas.protocol import QuotasOut
from shared.schemas import ErrorResponse

__all__ = ["router"]

router = APIRouter(prefix="/v1/quotas", tags=["quotas"])


@router.get(
    "",
    response_model=QuotasOut,
    summary="Your tenant's limits and usage",
    responses={429: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
async def get_quotas(principal: PrincipalDep, quotas: QuotasDep) -> QuotasOut:
    """The limits in force for the caller's tenant (the defaults, with its own overrides) and what it
    holds now: past a limit, submissions answer `429` with `Retry-After` (see docs/limits.md)."""
    return QuotasOut.model_validate(await quotas.describe(principal.tenant))
