"""A tenant's limits: the defaults (`QuotaSettings`) with its own overrides (`tenants.limits`) on top.

`tenants.limits` is a JSON object `{name: value}` whose names are `LIMIT_NAMES` and whose values are
positive integers, or null for "unlimited for this tenant"; a name left out takes the default. The API
reads a tenant's overrides through `OverridesCache` (one read per tenant per `overrides_cache_s`), the
CLI (`textfleet tenants limits`) writes them with `set_overrides` / `clear_overrides`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from shared.db.tenant_models import Tenant
from shared.errors import InvalidInputError
from shared.quotas.settings import LIMIT_NAMES, QuotaSettings
from shared.tenancy.store import ensure_tenant

__all__ = [
    "OverridesCache",
    "TenantLimits",
    "check_overrides",
    "clear_overrides",
    "effective",
    "read_overrides",
    "set_overrides",
]

Overrides = dict[str, int | None]


@dataclass(frozen=True)
class TenantLimits:
    """The limits in force for one tenant (None: unlimited)."""

    tenant: str
    requests_per_second: int | None
    max_queued_jobs: int | None
    tokens_per_minute: int | None
    tokens_per_day: int | None


def effective(
    defaults: QuotaSettings, tenant: str, overrides: Mapping[str, int | None] | None
) -> TenantLimits:
    """`defaults` with the tenant's `overrides` on top, name by name."""
    values = {name: getattr(defaults, name) for name in LIMIT_NAMES}
    values.update({name: value for name, value in (overrides or {}).items() if name in values})
    return TenantLimits(tenant=tenant, **values)


def check_overrides(values: Mapping[str, Any]) -> Overrides:
    """Valid overrides (known names; positive integers or None), or InvalidInputError naming the first
    problem."""
    out: Overrides = {}
    for name, value in values.items():
        if name not in LIMIT_NAMES:
            raise InvalidInputError(
                f"unknown limit {name!r}; the limits are {', '.join(LIMIT_NAMES)}", field=name
            )
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise InvalidInputError(f"{name} must be a positive integer or null (unlimited)", field=name)
        out[name] = value
    return out


def read_overrides(session: Session, tenant: str) -> Overrides:
    """The tenant's stored overrides ({} when it has none, or no row yet)."""
    stored = session.get(Tenant, tenant)
    if stored is None or not stored.limits:
        return {}
    return {name: value for name, value in stored.limits.items() if name in LIMIT_NAMES}


def set_overrides(session: Session, tenant: str, values: Mapping[str, Any]) -> Overrides:
    """Merge `values` into the tenant's overrides (creating the tenant if needed); the result. The
    caller commits."""
    checked = check_overrides(values)
    row = ensure_tenant(session, tenant)
    merged = {**(row.limits or {}), **checked}
    row.limits = merged
    session.flush()
    return {name: value for name, value in merged.items() if name in LIMIT_NAMES}


def clear_overrides(session: Session, tenant: str, names: list[str] | None = None) -> Overrides:
    """Remove the named overrides (all when `names` is None): those limits take the defaults again.
    The overrides left. The caller commits."""
    if names:
        check_overrides(dict.fromkeys(names))
    row = session.get(Tenant, tenant)
    if row is None:
        return {}
    kept = {k: v for k, v in (row.limits or {}).items() if names and k not in names}
    row.limits = kept or None
    session.flush()
    return kept


class OverridesCache:
    """Each tenant's overrides, read at most once per `ttl_s` per process (thread-safe)."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, Overrides]] = {}
        self._lock = threading.Lock()

    def get(self, tenant: str, load: Callable[[], Overrides]) -> Overrides:
        """The cached overrides of `tenant`, or `load()` when none are cached or they are stale."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(tenant)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = load()
        with self._lock:
            self._entries[tenant] = (now + self.ttl_s, value)
        return value

    def fresh(self, tenant: str) -> Overrides | None:
        """The cached overrides if they are still fresh, else None (the caller loads them)."""
        with self._lock:
            entry = self._entries.get(tenant)
        return entry[1] if entry is not None and entry[0] > time.monotonic() else None
