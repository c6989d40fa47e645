"""Settings of authentication (`TEXTFLEET_AUTH_*`): a group of `shared.settings.Settings` (`settings.auth`),
read from the same environment with the same prefix, so each variable is `TEXTFLEET_<FIELD>`."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["AuthSettings"]


class AuthSettings(BaseSettings):
    """Who may call the API. Each field is `TEXTFLEET_<NAME>`."""

    model_config = SettingsConfigDict(
        env_prefix="TEXTFLEET_", env_file=".env", extra="ignore", case_sensitive=False
    )

    auth_enabled: bool = Field(
        True,
        description="Require `Authorization: Bearer <key>` on every `/v1` request. Off: every caller is the "
        "`default` tenant with every scope (what `textfleet dev` runs by default, for local use only).",
    )
    auth_cache_ttl_s: float = Field(
        5.0,
        ge=0,
        le=300,
        description="How long an API process remembers a verified key before reading it again: a revoked "
        "or expired key stops working within this many seconds (0: read the database on every request).",
    )
