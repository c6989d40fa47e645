"""Whose objects a caller sees: the one rule every route that reads, lists, waits on, cancels, deletes
or re-sends a job, file or batch applies (issue 12, isolation).

A caller sees its own tenant's objects; a key with the `admin` scope sees every tenant's. Another
tenant's object is answered exactly like one that does not exist: the services filter by tenant in
the same read that looks the object up (`shared.db.repository.get`, `FilesService.get`,
`BatchesService`), so status, body and timing are those of a missing id. Objects are created in the
caller's own tenant, admin or not.
"""

from __future__ import annotations

from shared.tenancy.principal import Principal

__all__ = ["visible_tenant"]


def visible_tenant(principal: Principal) -> str | None:
    """The tenant whose objects `principal` may see: its own, or None (every tenant's) for an admin."""
    return None if principal.is_admin else principal.tenant
