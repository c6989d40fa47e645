"""Settings of retention and erasure (`TEXTFLEET_RETENTION_*`).

A group of `shared.settings.Settings` (`settings.privacy`), read from the same environment with the
same prefix, so each variable is `TEXTFLEET_<FIELD>`. A tenant's own `tenants.retention_days` (when
set) overrides `retention_days` for its jobs.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.privacy.secrets import SecretSources

__all__ = ["PrivacySettings", "SecretSources"]  # SecretSources: for shared.settings


class PrivacySettings(SecretSources):
    """How long a finished job's data is kept. Each field is `TEXTFLEET_<NAME>`."""

    model_config = SettingsConfigDict(
        env_prefix="TEXTFLEET_", env_file=".env", extra="ignore", case_sensitive=False
    )

    retention_days: int = Field(
        30,
        ge=0,
        description="Days a finished job keeps its input, params, metadata, result and error text; then "
        "the sweeper erases them (the row stays: task, status, tenant, tokens, timings). 0 erases at "
        "the first sweep after the job ends. A tenant's `retention_days` overrides it.",
    )
    retention_enabled: bool = Field(
        True,
        description="Whether the sweeper erases finished jobs' data after their retention period "
        "(`DELETE /v1/jobs/{id}` erases one job whatever this says).",
    )
