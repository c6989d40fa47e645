"""A webhook per batch (issue 13): `batches.webhook`, and deliveries whose subject is a batch
(`webhook_deliveries.batch_id`; `job_id` nullable).

Revision ID: 0005_issue13_batch_webhooks
Revises: 0004_issue13_files_batches
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_issue13_batch_webhooks"
down_revision = "0004_issue13_files_batches"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("webhook", sa.String(2048), nullable=True))
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.alter_column("job_id", existing_type=sa.String(26), nullable=True)
        batch.add_column(sa.Column("batch_id", sa.String(40), nullable=True))
        batch.create_unique_constraint("uq_webhook_deliveries_batch_event", ["batch_id", "event"])


def downgrade() -> None:
    op.execute("DELETE FROM webhook_deliveries WHERE job_id IS NULL")
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_constraint("uq_webhook_deliveries_batch_event", type_="unique")
        batch.drop_column("batch_id")
        batch.alter_column("job_id", existing_type=sa.String(26), nullable=False)
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("webhook")
