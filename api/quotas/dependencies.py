"""`limit_request_rate`: the per-tenant request rate, a dependency of every `/v1` router (after
authentication, so it counts the caller's tenant; FastAPI resolves the principal once per request)."""

from __future__ import annotations

from api.deps import PrincipalDep, QuotasDep

__all__ = ["limit_request_rate"]


async def limit_request_rate(principal: PrincipalDep, limiter: QuotasDep) -> None:
    """Count the request against its tenant's requests per second (`429` + `Retry-After` past it)."""
    await limiter.hit(principal.tenant)
