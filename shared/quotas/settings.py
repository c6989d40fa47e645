"""Settings of the per-tenant limits (`TEXTFLEET_QUOTA_*`): the defaults every tenant gets.

A group of `shared.settings.Settings` (`settings.quotas`), read from the same environment. A tenant's
own values (`tenants.limits`, set with `textfleet tenants limits set`) replace these field by field;
the override keys are these field names (`shared.quotas.tenant_limits`). `None` means unlimited.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["LIMIT_NAMES", "QuotaSettings"]

#: The limits a tenant may override (each one a field below).
LIMIT_NAMES: tuple[str, ...] = (
    "requests_per_second",
    "max_queued_jobs",
    "tokens_per_minute",
    "tokens_per_day",
)


class QuotaSettings(BaseSettings):
    """Default limits of every tenant. Each field is `TEXTFLEET_QUOTA_<NAME>`; `none` (or unset, where
    the default is None) means unlimited."""

    model_config = SettingsConfigDict(
        env_prefix="TEXTFLEET_QUOTA_",
        env_file=".env",
        extra="ignore",
        case_sensitive=False,
        env_parse_none_str="none",  # TEXTFLEET_QUOTA_<NAME>=none: unlimited
    )

    requests_per_second: int | None = Field(
        None,
        gt=0,
        description="Requests one tenant may make to `/v1` per second (a moving window, counted in Redis "
        "across every API replica); past it `429` with `Retry-After`. Unset (the default: with auth off "
        "every caller is the one `default` tenant): no request rate limit. Set it in production.",
    )
    max_queued_jobs: int | None = Field(
        100_000,
        gt=0,
        description="Unfinished jobs (queued or running) one tenant may have at once; a submission that "
        "would pass it is refused with `429` (a bulk request larger than it: `422`). Unset: no cap.",
    )
    tokens_per_minute: int | None = Field(
        None,
        gt=0,
        description="Generation tokens one tenant may reserve per clock minute (UTC): each generation job "
        "reserves its `max_tokens` (or the task's default) at submission, the unused part is returned "
        "when it ends. Over budget: `429` with `Retry-After` (the next minute). Unset: no budget.",
    )
    tokens_per_day: int | None = Field(
        None,
        gt=0,
        description="Generation tokens one tenant may reserve per day (UTC), like tokens_per_minute. "
        "Batches (`/v1/batches`) count against this budget only. Unset: no budget.",
    )
    overrides_cache_s: float = Field(
        5.0,
        ge=0,
        description="How long an API process keeps a tenant's overrides (`tenants.limits`) before reading "
        "them again: a change made with `textfleet tenants limits set` is in force within this time.",
    )
