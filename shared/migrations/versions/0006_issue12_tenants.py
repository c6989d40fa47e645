"""Tenants and API keys (issue 12): tables `tenants` and `api_keys`; the owning tenant of every job,
file and batch (existing rows: `default`); `jobs.erased_at`; idempotency keys scoped per tenant.

Revision ID: 0006_issue12_tenants
Revises: 0005_issue13_batch_webhooks
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from shared.db.models import UTCDateTime

revision = "0006_issue12_tenants"
down_revision = "0005_issue13_batch_webhooks"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
_TENANT = sa.String(64)
_DEFAULT = sa.text("'default'")
_OWNED = ("jobs", "files", "batches")


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", _TENANT, primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("limits", JSONType, nullable=True),
        sa.Column("retention_days", sa.Integer(), nullable=True),
        sa.Column("webhook_secret", sa.String(255), nullable=True),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant_id", _TENANT, nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("scopes", JSONType, nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_api_keys_tenant_id", "api_keys", ["tenant_id"])
    op.create_index("ix_api_keys_prefix", "api_keys", ["prefix"])
    for table in _OWNED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("tenant_id", _TENANT, nullable=False, server_default=_DEFAULT))
        op.create_index(f"ix_{table}_tenant_id_id", table, ["tenant_id", "id"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("erased_at", UTCDateTime(), nullable=True))
    _scope_idempotency_keys()


def _scope_idempotency_keys() -> None:
    """Primary key (key) -> (tenant_id, key), keeping the live keys (a replay must still find its jobs)."""
    op.create_table(
        "idempotency_keys_v2",
        sa.Column("tenant_id", _TENANT, nullable=False, server_default=_DEFAULT),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("job_ids", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "key", name="pk_idempotency_keys"),
    )
    op.execute(
        "INSERT INTO idempotency_keys_v2 (tenant_id, key, request_hash, job_ids, created_at) "
        "SELECT 'default', key, request_hash, job_ids, created_at FROM idempotency_keys"
    )
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.rename_table("idempotency_keys_v2", "idempotency_keys")
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.create_table(
        "idempotency_keys_v1",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("job_ids", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.execute(
        "INSERT INTO idempotency_keys_v1 (key, request_hash, job_ids, created_at) "
        "SELECT key, request_hash, job_ids, created_at FROM idempotency_keys WHERE tenant_id = 'default'"
    )
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.rename_table("idempotency_keys_v1", "idempotency_keys")
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("erased_at")
    for table in _OWNED:
        op.drop_index(f"ix_{table}_tenant_id_id", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("tenant_id")
    op.drop_index("ix_api_keys_prefix", table_name="api_keys")
    op.drop_index("ix_api_keys_tenant_id", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("tenants")
