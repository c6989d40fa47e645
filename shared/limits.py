"""The request limits in force: what one job may ask for (text length, tokens, deadlines, schema size,
metadata size and depth) and how large a request body may be.

Request models validate against `current_limits()`, never against the global `get_settings()`
directly, so each app enforces the limits of the settings it was created with: the API sets them
per request (`api.app`: `limits_in_force(Limits.from_settings(app.state.settings))`). Anywhere no
limits were set (a worker re-reading a stored job, a CLI, a test), they are those of `get_settings()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from shared.constants import MULTIPART_OVERHEAD_BYTES
from shared.settings import Settings, get_settings

__all__ = ["Limits", "current_limits", "limits_in_force"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Request limits (each one a `Settings` field of the same name)."""

    max_input_chars: int
    max_tokens_limit: int
    max_timeout_s: float
    max_ttl_s: float
    max_schema_chars: int
    max_metadata_bytes: int
    max_metadata_depth: int
    #: Largest request body of every route but an upload (`api.limits`).
    max_body_bytes: int
    #: Largest body of a file upload: the file's own cap plus room for its multipart framing.
    max_upload_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits `settings` set."""
        return cls(
            max_input_chars=settings.max_input_chars,
            max_tokens_limit=settings.max_tokens_limit,
            max_timeout_s=settings.max_timeout_s,
            max_ttl_s=settings.max_ttl_s,
            max_schema_chars=settings.max_schema_chars,
            max_metadata_bytes=settings.inputs.max_metadata_bytes,
            max_metadata_depth=settings.inputs.max_metadata_depth,
            max_body_bytes=settings.inputs.max_body_bytes,
            max_upload_bytes=settings.files.files_max_bytes + MULTIPART_OVERHEAD_BYTES,
        )


_IN_FORCE: ContextVar[Limits | None] = ContextVar("textfleet_limits", default=None)


def current_limits() -> Limits:
    """The limits in force here: those set by `limits_in_force`, else those of `get_settings()`."""
    limits = _IN_FORCE.get()
    return limits if limits is not None else Limits.from_settings(get_settings())


@contextmanager
def limits_in_force(limits: Limits) -> Iterator[Limits]:
    """Validate with `limits` inside the block (this task or thread, and what it starts)."""
    token = _IN_FORCE.set(limits)
    try:
        yield limits
    finally:
        _IN_FORCE.reset(token)
