"""The caller of a request: its tenant and the scopes of the key it presented."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.constants import DEFAULT_TENANT

__all__ = ["OPEN_PRINCIPAL", "Principal", "Scope", "parse_scopes"]


class Scope(StrEnum):
    """What a key may do. `admin` implies the others and sees every tenant's objects."""

    JOBS_WRITE = "jobs:write"
    JOBS_READ = "jobs:read"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the tenant it acts for, its scopes, and its key (None when open)."""

    tenant: str
    scopes: frozenset[Scope]
    key_id: str | None = None

    @property
    def is_admin(self) -> bool:
        """Whether this caller holds the admin scope (sees across tenants)."""
        return Scope.ADMIN in self.scopes

    def allows(self, scope: Scope) -> bool:
        """Whether this caller may do what `scope` guards (admin may do everything)."""
        return self.is_admin or scope in self.scopes


#: Every request when authentication is disabled (`TEXTFLEET_AUTH_ENABLED=false`, e.g. `textfleet dev`):
#: the default tenant, with every scope.
OPEN_PRINCIPAL = Principal(tenant=DEFAULT_TENANT, scopes=frozenset(Scope), key_id=None)


def parse_scopes(values: str | list[str] | tuple[str, ...]) -> frozenset[Scope]:
    """Scopes from `"jobs:read,jobs:write"` or a list; an unknown name raises ValueError naming it."""
    items = values.split(",") if isinstance(values, str) else list(values)
    names = [item.strip() for item in items if item.strip()]
    known = {scope.value for scope in Scope}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    if not names:
        raise ValueError("at least one scope is needed")
    return frozenset(Scope(name) for name in names)
