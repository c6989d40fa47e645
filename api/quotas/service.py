"""`QuotaService`: the API's side of the per-tenant limits. Each tenant's requests per second are
counted in Redis across every API replica with the `limits` library (a moving window per tenant) and
answered `429` with `Retry-After` past the limit; `describe` reads a tenant's limits and holdings for
`GET /v1/quotas`. (Reservations at admission are `shared.quotas.admission`.)

Built once per app (`api.app`), held on `app.state.quota_service`; `api.quotas.dependencies` calls
`hit` on every `/v1` request once the caller is authenticated.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Any

import structlog
from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from starlette.concurrency import run_in_threadpool

from shared.constants import QUOTA_PREFIX, REDIS_CONNECT_TIMEOUT_S
from shared.errors import QuotaExceededError
from shared.quotas.admission import Quotas
from shared.quotas.budget import usage
from shared.quotas.settings import LIMIT_NAMES
from shared.quotas.tenant_limits import TenantLimits, effective

__all__ = ["QuotaService", "limits_storage_uri"]

log = structlog.get_logger(__name__)


def limits_storage_uri(redis_url: str) -> str:
    """The `limits` storage URI of a redis-py URL (`redis://`, `rediss://`, `unix://`)."""
    if redis_url.startswith("unix://"):
        return "async+redis+unix://" + redis_url.removeprefix("unix://")
    return "async+" + redis_url


class QuotaService:
    """Per-tenant request rate and limits on the app's Redis; tenants' overrides through the quotas'
    cache."""

    def __init__(self, quotas: Quotas, sessions: Any) -> None:
        self.quotas = quotas
        self.sessions = sessions
        self.storage = RedisStorage(
            limits_storage_uri(quotas.redis_url),
            implementation="redispy",
            key_prefix=f"{QUOTA_PREFIX}rate",
            wrap_exceptions=True,
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
            socket_timeout=REDIS_CONNECT_TIMEOUT_S,
        )
        self.limiter = MovingWindowRateLimiter(self.storage)
        #: One database read per tenant at a time: concurrent requests of a tenant whose cache entry is
        #: stale wait for the same read (a burst of a thousand requests is one read, not a thousand).
        self._loading: dict[str, asyncio.Future[TenantLimits]] = {}

    async def close(self) -> None:
        """Close the storage's Redis connections (the app's lifespan ends)."""
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    def _load(self, tenant: str) -> TenantLimits:
        with self.sessions() as session:
            return self.quotas.limits(session, tenant)

    async def limits_of(self, tenant: str) -> TenantLimits:
        """The tenant's limits; a database read (in the threadpool) only when its cache entry is stale."""
        overrides = self.quotas.overrides.fresh(tenant)
        if overrides is not None:
            return effective(self.quotas.settings, tenant, overrides)
        pending = self._loading.get(tenant)
        if pending is None:
            pending = asyncio.ensure_future(run_in_threadpool(self._load, tenant))
            self._loading[tenant] = pending
            pending.add_done_callback(lambda _done: self._loading.pop(tenant, None))
        return await asyncio.shield(pending)

    async def describe(self, tenant: str) -> dict[str, Any]:
        """The tenant's limits and what it holds now (`GET /v1/quotas`)."""
        limits = await self.limits_of(tenant)
        held = await run_in_threadpool(usage, self.quotas.client(), tenant)
        return {
            "tenant": tenant,
            "limits": {name: getattr(limits, name) for name in LIMIT_NAMES},
            "usage": {
                "unfinished_jobs": held.open_jobs,
                "tokens_this_minute": held.tokens_this_minute,
                "tokens_today": held.tokens_today,
            },
        }

    async def hit(self, tenant: str) -> None:
        """Count one request of `tenant`; QuotaExceededError (429) past its requests per second. If
        Redis is unreachable the request goes through (logged): the routes that need Redis fail on
        their own, and reads from the database keep working."""
        rate = (await self.limits_of(tenant)).requests_per_second
        if rate is None:
            return
        item = RateLimitItemPerSecond(rate)
        try:
            if await self.limiter.hit(item, tenant):
                return
            stats = await self.limiter.get_window_stats(item, tenant)
        except StorageError as exc:
            log.warning("quota.rate_unchecked", tenant=tenant, error=str(exc))
            return
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        raise QuotaExceededError(
            f"rate limit exceeded: at most {rate} requests per second for this tenant",
            retry_after_s=retry,
            code="rate_limited",
        )
