"""Webhook deliveries re-sent by an operator: when (their max-age window starts again then).

Revision ID: 0003_issue17_webhook_resend
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.db.models import UTCDateTime

revision = "0003_issue17_webhook_resend"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("resent_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("resent_at")
