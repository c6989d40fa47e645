"""Settings of authentication (`TEXTFLEET_AUTH_*`): a group of `shared.settings.Settings` (`settings.auth`),
read from the same environment with the same prefix, so each variable is `TEXTFLEET_<FIELD>`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.privacy.secrets import SecretSources

__all__ = ["AuthSettings"]


class AuthSettings(SecretSources):
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
    auth_metrics: Literal["open", "key"] = Field(
        "key",
        description="`GET /metrics` of the API: `key` needs an admin key or `auth_metrics_token` (its "
        "labels name tenants), `open` serves it to anyone. Open whenever `auth_enabled` is off.",
    )
    auth_metrics_token: SecretStr | None = Field(
        None,
        min_length=16,
        description="A bearer token that opens `/metrics` and nothing else, for the Prometheus scraper "
        "(`authorization: {credentials: ...}`), so it needs no key that could read jobs. Unset: admin "
        "keys only.",
    )
    auth_docs: Literal["open", "key"] = Field(
        "open",
        description="`/docs`, `/redoc` and `/openapi.json`: `open` to anyone, or `key`: any valid API key.",
    )
