"""`limit_request_rate`: the per-tenant request rate, a dependency of every `/v1` router (after
authentication, so it counts the caller's tenant; FastAPI resolves the principal once per request)."""

from __future__ import annotations

from fastapi import Request

from api.deps import PrincipalDep
from api.quotas.service import RequestRateLimiter

__all__ = ["limit_request_rate"]


async def limit_request_rate(request: Request, principal: PrincipalDep) -> None:
    """Count the request against its tenant's requests per second (`429` + `Retry-After` past it)."""
    limiter: RequestRateLimiter = request.app.state.rate_limiter
    await limiter.hit(principal.tenant)
