"""Response model of `GET /v1/quotas`: the caller's tenant's limits and what it holds now."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["QuotaLimits", "QuotaUsage", "QuotasOut"]


class QuotaLimits(BaseModel):
    """The limits in force (null: unlimited)."""

    requests_per_second: int | None = Field(description="requests to `/v1` per second")
    max_queued_jobs: int | None = Field(description="unfinished (queued or running) jobs at once")
    tokens_per_minute: int | None = Field(description="generation tokens reserved per UTC minute")
    tokens_per_day: int | None = Field(description="generation tokens reserved per UTC day")


class QuotaUsage(BaseModel):
    """What the tenant holds right now (Redis, shared by every API replica)."""

    unfinished_jobs: int = Field(description="jobs queued or running (batches' jobs not counted)")
    tokens_this_minute: int = Field(description="reserved by unfinished jobs + used by ended ones")
    tokens_today: int = Field(description="reserved by unfinished jobs + used by ended ones")


class QuotasOut(BaseModel):
    tenant: str
    limits: QuotaLimits
    usage: QuotaUsage
