"""Per-tenant limits (issue 12): `jobs.reserved_tokens`, the generation tokens a job reserved from its
tenant's budgets at admission (`shared.quotas`); with `completion_tokens` (what it used) the database's
record of every reservation.

Revision ID: 0007_issue12_quotas
Revises: 0006_issue12_tenants
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_issue12_quotas"
down_revision = "0006_issue12_tenants"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("reserved_tokens", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("reserved_tokens")
