"""The `tenants` and `api_keys` tables: create a key, find the active key of a hash, ensure a tenant."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from ulid import ULID

from shared.constants import TENANT_MAX_CHARS
from shared.db.models import utcnow
from shared.db.tenant_models import ApiKey, Tenant
from shared.tenancy.keys import generate_key
from shared.tenancy.principal import Scope

__all__ = ["create_key", "ensure_tenant", "find_active_key", "new_key_id", "validate_tenant_name"]

_TENANT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def new_key_id() -> str:
    """A new key id (`key_` + ULID): what listings show and revocation takes."""
    return f"key_{ULID()}"


def validate_tenant_name(tenant: str) -> str:
    """`tenant` if it is a usable name (1-64 of letters, digits, `-`, `_`, `.`), else ValueError."""
    if not tenant or len(tenant) > TENANT_MAX_CHARS or not set(tenant) <= _TENANT_CHARS:
        raise ValueError(
            f"a tenant name is 1-{TENANT_MAX_CHARS} letters, digits, '-', '_' or '.', got {tenant!r}"
        )
    return tenant


def ensure_tenant(session: Session, tenant: str) -> Tenant:
    """The tenant's row, created (with every setting at its default) if it has none yet."""
    row = session.get(Tenant, validate_tenant_name(tenant))
    if row is None:
        row = Tenant(id=tenant)
        session.add(row)
        session.flush()
    return row


def create_key(
    session: Session,
    tenant: str,
    scopes: Iterable[Scope],
    *,
    expires_at: datetime | None = None,
    name: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key of `tenant` (its row created if needed): (the stored row, the plaintext to show once).
    The caller commits."""
    ensure_tenant(session, tenant)
    new = generate_key()
    row = ApiKey(
        id=new_key_id(),
        tenant_id=tenant,
        prefix=new.prefix,
        secret_hash=new.secret_hash,
        scopes=sorted(Scope(scope).value for scope in scopes),
        name=name,
        created_at=utcnow(),
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return row, new.plaintext


def find_active_key(session: Session, secret_hash: str, now: datetime | None = None) -> ApiKey | None:
    """The key stored with this hash, if it is neither revoked nor expired."""
    now = now or utcnow()
    query = select(ApiKey).where(
        ApiKey.secret_hash == secret_hash,
        ApiKey.revoked_at.is_(None),
        or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
    )
    return session.scalars(query).first()
