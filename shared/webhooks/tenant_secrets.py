"""A tenant's own webhook signing secret (`tenants.webhook_secret`).

Deliveries of a tenant that has one are signed with it; all others with `TEXTFLEET_WEBHOOK_SECRET`
(webhooks must still be enabled by that global secret). The secret is kept in the database as it is:
an HMAC key must be at hand to sign, so it cannot be stored as a hash. It is never logged; the CLI
(`textfleet tenants webhook-secret`) prints it only when it generates or is asked to show it.

Secrets are Standard Webhooks secrets: `whsec_` and base64 of 24 to 64 random bytes.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.tenant_models import Tenant
from shared.errors import InvalidInputError
from shared.tenancy.store import ensure_tenant

__all__ = [
    "SECRET_PREFIX",
    "check_webhook_secret",
    "clear_tenant_webhook_secret",
    "new_webhook_secret",
    "set_tenant_webhook_secret",
    "tenant_webhook_secret",
    "tenant_webhook_secrets",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
_MIN_BYTES, _MAX_BYTES = 24, 64


def new_webhook_secret() -> str:
    """A fresh random secret (32 bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def check_webhook_secret(secret: str) -> str:
    """`secret` (stripped) if it is `whsec_` and base64 of 24 to 64 bytes; InvalidInputError otherwise
    (the message never repeats the secret)."""
    value = secret.strip()
    if not value.startswith(SECRET_PREFIX):
        raise InvalidInputError(f"a webhook secret starts with {SECRET_PREFIX!r}", field="webhook_secret")
    try:
        key = base64.b64decode(value[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInputError(
            f"a webhook secret is {SECRET_PREFIX!r} and base64 (the rest is not base64)",
            field="webhook_secret",
        ) from exc
    if not _MIN_BYTES <= len(key) <= _MAX_BYTES:
        raise InvalidInputError(
            f"a webhook secret's key must be {_MIN_BYTES} to {_MAX_BYTES} bytes, not {len(key)}",
            field="webhook_secret",
        )
    return value


def set_tenant_webhook_secret(session: Session, tenant: str, secret: str | None = None) -> str:
    """Give `tenant` (created if new) its own signing secret: `secret` (checked) or a new random one.
    Returns the secret. Deliveries attempted after the caller commits are signed with it."""
    value = check_webhook_secret(secret) if secret is not None else new_webhook_secret()
    ensure_tenant(session, tenant).webhook_secret = value
    session.flush()
    return value


def clear_tenant_webhook_secret(session: Session, tenant: str) -> bool:
    """Make `tenant` sign with the global secret again. Whether it had a secret of its own."""
    row = session.get(Tenant, tenant)
    if row is None or row.webhook_secret is None:
        return False
    row.webhook_secret = None
    session.flush()
    return True


def tenant_webhook_secret(session: Session, tenant: str) -> str | None:
    """`tenant`'s own secret, or None (it signs with the global one)."""
    row = session.get(Tenant, tenant)
    return row.webhook_secret if row is not None else None


def tenant_webhook_secrets(session: Session, tenants: Iterable[str]) -> dict[str, str]:
    """tenant -> own secret, for those of `tenants` that have one (one query)."""
    wanted = sorted(set(tenants))
    if not wanted:
        return {}
    rows = session.execute(
        select(Tenant.id, Tenant.webhook_secret).where(
            Tenant.id.in_(wanted), Tenant.webhook_secret.is_not(None)
        )
    ).all()
    return {str(r[0]): str(r[1]) for r in rows}
