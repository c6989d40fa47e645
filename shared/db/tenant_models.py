"""Tables of tenants and their API keys (issue 12).

A tenant needs no row to exist: jobs carry their tenant's name, and a `tenants` row only holds what
differs from the defaults (limit overrides, retention, a webhook signing secret). Keys are stored as
a SHA-256 of the key (`shared.tenancy.keys`), never in clear.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.constants import TENANT_MAX_CHARS
from shared.db.models import Base, JSONType, UTCDateTime, utcnow

__all__ = ["ApiKey", "Tenant"]


class Tenant(Base):
    """A tenant's own settings; absent fields (NULL) mean the deployment's defaults."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(TENANT_MAX_CHARS), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: Per-tenant overrides of the default limits: `{setting name: value}`.
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    #: Days a finished job's inputs and results are kept (NULL: the deployment's default).
    retention_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Signs this tenant's webhook deliveries instead of the deployment's secret (`whsec_...`).
    webhook_secret: Mapped[str | None] = mapped_column(String(255), nullable=True)


class ApiKey(Base):
    """An API key of a tenant: its hash, listed prefix, scopes and lifetime."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # "key_" + ULID
    tenant_id: Mapped[str] = mapped_column(String(TENANT_MAX_CHARS), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSONType)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (Index("ix_api_keys_prefix", "prefix"),)
