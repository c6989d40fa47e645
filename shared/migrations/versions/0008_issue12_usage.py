"""Usage accounting (issue 12): `jobs.classified_texts` (texts a succeeded classifier job classified,
written at finish, kept when a retention purge erases the job's input and result), and the index
`GET /v1/usage` reads by (tenant, finished_at). Succeeded classifier jobs of before this revision
had one text each: they are counted so.

Revision ID: 0008_issue12_usage
Revises: 0007_issue12_quotas
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_issue12_usage"
down_revision = "0007_issue12_quotas"
branch_labels = None
depends_on = None

#: The classifier tasks at this revision (each job's input was one `text`).
_CLASSIFIER_TASKS = ("moderate", "risk", "sentiment", "entities")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("classified_texts", sa.Integer(), nullable=True))
    jobs = sa.table(
        "jobs",
        sa.column("task", sa.String),
        sa.column("status", sa.String),
        sa.column("classified_texts", sa.Integer),
    )
    op.execute(
        sa.update(jobs)
        .where(jobs.c.status == "succeeded", jobs.c.task.in_(_CLASSIFIER_TASKS))
        .values(classified_texts=1)
    )
    op.create_index("ix_jobs_tenant_finished", "jobs", ["tenant_id", "finished_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_tenant_finished", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("classified_texts")
