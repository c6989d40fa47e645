"""Settings of request sizes (`TEXTFLEET_MAX_BODY_BYTES`, `TEXTFLEET_MAX_METADATA_*`).

A group of `shared.settings.Settings` (`settings.inputs`), read from the same environment with the same
prefix, so each variable is `TEXTFLEET_<FIELD>`. The caps on what a job asks for (text length,
`max_tokens`, deadlines, schema size) stay in the request-limits section of `Settings`; these bound the
request as bytes and the free-form `metadata` a client attaches.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["InputSettings"]


class InputSettings(BaseSettings):
    """Caps on request bodies and metadata. Each field is `TEXTFLEET_<NAME>`."""

    model_config = SettingsConfigDict(
        env_prefix="TEXTFLEET_", env_file=".env", extra="ignore", case_sensitive=False
    )

    max_body_bytes: int = Field(
        16 * 1024 * 1024,
        gt=0,
        description="Largest request body (bytes) of every route but file uploads (`files_max_bytes`); "
        "a larger one is answered `413` before it is read. Size it for `bulk_max_jobs` typical items.",
    )
    max_metadata_bytes: int = Field(
        16 * 1024,
        gt=0,
        description="Largest job `metadata`, measured as compact UTF-8 JSON; more is a `422`.",
    )
    max_metadata_depth: int = Field(
        8,
        ge=1,
        description="Deepest nesting of objects and arrays in a job's `metadata` (a flat object is 1).",
    )
