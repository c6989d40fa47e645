"""Managing API keys after they exist: list, revoke, expiry, last use.

Creating a key and finding the active one for a presented secret are `shared.tenancy.store`; this module
is what an operator does with keys afterwards (`textfleet keys`, `/v1/keys`) and the cheap bookkeeping
of when a key was last used. Nothing here reads or returns a key's secret: a listed key shows its
`prefix` (the first characters of the secret, enough to recognise it) and never its hash.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from shared.db.tenant_models import ApiKey
from shared.errors import InvalidInputError, KeyNotFoundError
from shared.tenancy.principal import Scope

__all__ = [
    "KeyInfo",
    "KeyStatus",
    "find_key",
    "key_status",
    "list_keys",
    "parse_expiry",
    "parse_scopes",
    "revoke_key",
    "touch_last_used",
]

KeyStatus = Literal["active", "revoked", "expired"]

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: Longest lifetime `--expires` accepts as a duration (a typo like `3000d` should not pass silently).
_MAX_DURATION = timedelta(days=3650)


class KeyInfo(BaseModel):
    """What may be shown of a key: everything but its secret and the secret's hash."""

    id: str = Field(description="The key's id (`key_...`).")
    tenant: str = Field(description="The tenant the key acts for.")
    prefix: str = Field(description="The first characters of the secret, to recognise a key by.")
    name: str | None = Field(description="A label given at creation.")
    scopes: list[str] = Field(description="What the key may do: `jobs:read`, `jobs:write`, `admin`.")
    status: KeyStatus = Field(description="`active`, `revoked` or `expired` (at the time of reading).")
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(
        description="Last successful authentication, written at most once a minute per key."
    )

    @classmethod
    def of(cls, key: ApiKey, now: datetime) -> KeyInfo:
        return cls(
            id=key.id,
            tenant=key.tenant_id,
            prefix=key.prefix,
            name=key.name,
            scopes=sorted(key.scopes),
            status=key_status(key, now),
            created_at=key.created_at,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
            last_used_at=key.last_used_at,
        )


def key_status(key: ApiKey, now: datetime) -> KeyStatus:
    """Whether `key` still authenticates at `now` (revoked wins over expired)."""
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def parse_expiry(text: str, now: datetime) -> datetime:
    """When a key given `--expires TEXT` expires: a duration from `now` (`90m`, `12h`, `30d`, `2w`)
    or an ISO 8601 time (`2027-01-31`, `2027-01-31T12:00:00+01:00`; without a zone it is UTC).
    Raises InvalidInputError (field `expires`) for anything else and for a time not in the future."""
    match = _DURATION.match(text)
    if match:
        amount = timedelta(seconds=int(match[1]) * _UNIT_S[match[2]])
        if amount <= timedelta(0) or amount > _MAX_DURATION:
            raise InvalidInputError("a key's lifetime must be more than 0 and at most 3650d", field="expires")
        return now + amount
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(
            "not a duration (90m, 12h, 30d, 2w) or an ISO 8601 time (2027-01-31T12:00:00Z)", field="expires"
        ) from None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if when <= now:
        raise InvalidInputError("the expiry time is not in the future", field="expires")
    return when


def parse_scopes(text: str) -> frozenset[Scope]:
    """Scopes from a comma-separated list (`jobs:read,jobs:write`, `admin`); unknown names are refused."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    valid = ", ".join(scope.value for scope in Scope)
    if not names:
        raise InvalidInputError(f"give at least one scope: {valid}", field="scopes")
    unknown = sorted(set(names) - {scope.value for scope in Scope})
    if unknown:
        raise InvalidInputError(f"unknown scope {', '.join(unknown)}; valid scopes: {valid}", field="scopes")
    return frozenset(Scope(name) for name in names)


def list_keys(session: Session, tenant: str | None = None) -> list[ApiKey]:
    """Every key (of `tenant`, if given), oldest first; revoked and expired ones included."""
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if tenant is not None:
        query = query.where(ApiKey.tenant_id == tenant)
    return list(session.scalars(query))


def find_key(session: Session, ref: str, tenant: str | None = None) -> ApiKey:
    """The key whose id (`key_...`) or prefix (`tfk_...`, as `textfleet keys list` shows it) is `ref`,
    within `tenant` if given. Raises KeyNotFoundError if none, InvalidInputError if a prefix is shared."""
    ref = ref.strip()
    query = select(ApiKey).where(or_(ApiKey.id == ref, ApiKey.prefix == ref))
    if tenant is not None:
        query = query.where(ApiKey.tenant_id == tenant)
    found = list(session.scalars(query.limit(10)))
    if not found:
        raise KeyNotFoundError(f"no key with id or prefix {ref[:40]!r}")
    exact = [key for key in found if key.id == ref]
    if exact:
        return exact[0]
    if len(found) > 1:
        ids = ", ".join(key.id for key in found)
        raise InvalidInputError(f"prefix {ref!r} matches several keys ({ids}); give the key id", field="key")
    return found[0]


def revoke_key(session: Session, ref: str, now: datetime, tenant: str | None = None) -> tuple[ApiKey, bool]:
    """Revoke the key `ref` (id or prefix) at `now`: (the key, whether this call revoked it; False if
    it was revoked already, which keeps its first revocation time)."""
    key = find_key(session, ref, tenant)
    if key.revoked_at is not None:
        return key, False
    key.revoked_at = now
    session.flush()
    return key, True


def touch_last_used(session: Session, key_id: str, now: datetime, every: timedelta) -> bool:
    """Record that `key_id` was used at `now`, unless it already was less than `every` ago (one
    conditional UPDATE, so several API replicas do not queue writes on one row). Whether it wrote."""
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .where(or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= now - every))
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
