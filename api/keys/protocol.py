"""Request and response bodies of `/v1/keys` (admin only)."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.tenancy.key_admin import KeyInfo
from shared.tenancy.principal import Scope

__all__ = ["KeyCreate", "KeyCreated", "KeyInfo", "KeyList"]

#: What a tenant id may look like (what `textfleet keys create --tenant` accepts too).
TENANT_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"


class KeyCreate(BaseModel):
    """A new key: its tenant (created if new), scopes, optional expiry and label."""

    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(pattern=TENANT_PATTERN, description="Tenant the key acts for.")
    scopes: list[Scope] = Field(
        min_length=1, max_length=3, description="`jobs:read`, `jobs:write`, `admin` (admin implies all)."
    )
    expires_at: AwareDatetime | None = Field(
        None, description="When the key stops working (with a time zone; must be in the future)."
    )
    name: str | None = Field(None, max_length=200, description="A label to recognise the key by.")


class KeyCreated(KeyInfo):
    """The created key, with its secret: shown this once, only its hash is stored."""

    key: str = Field(description="The secret to send as `Authorization: Bearer <key>`; shown only now.")


class KeyList(BaseModel):
    """Keys, oldest first, revoked and expired ones included; never their secrets."""

    items: list[KeyInfo]
