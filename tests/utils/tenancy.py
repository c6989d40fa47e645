"""Factories of tenants and API keys for tests: a real key row in the test's database."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from shared.db.session import session_scope
from shared.tenancy.principal import Scope
from shared.tenancy.store import create_key

__all__ = ["READ_WRITE", "auth_headers", "make_key"]

#: What an ordinary client's key holds.
READ_WRITE = (Scope.JOBS_READ, Scope.JOBS_WRITE)


def make_key(
    database_url: str,
    tenant: str = "acme",
    scopes: Iterable[Scope] = READ_WRITE,
    *,
    expires_at: datetime | None = None,
    name: str | None = None,
) -> str:
    """A new key of `tenant` with `scopes`, stored in `database_url`: its plaintext."""
    with session_scope(database_url) as session:
        _row, plaintext = create_key(session, tenant, scopes, expires_at=expires_at, name=name)
    return plaintext


def auth_headers(key: str) -> dict[str, str]:
    """The request headers that present `key`."""
    return {"Authorization": f"Bearer {key}"}
