"""Migrations 0004 and 0005 create exactly the tables `shared.db.batch_models` declares, and 0005
the batch subject of `webhook_deliveries` (PostgreSQL and SQLite)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from shared.db.batch_models import Batch, BatchRequest, FileBlob, FileObject
from shared.db.models import Base, WebhookDelivery
from shared.db.session import get_engine

TABLES = {model.__tablename__ for model in (Batch, BatchRequest, FileBlob, FileObject, WebhookDelivery)}


def test_migration_matches_the_models(database_url: str) -> None:
    with get_engine(database_url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diffs = compare_metadata(context, Base.metadata)
    ours = [diff for diff in diffs if _touches_ours(diff)]
    assert ours == []


def _touches_ours(diff: Any) -> bool:
    """Whether an autogenerate diff is about one of TABLES (by name, or by its constraint's table)."""
    parts = diff[0] if isinstance(diff, list) else diff  # a modify_* diff is a list of tuples
    tables = {getattr(getattr(part, "table", None), "name", None) for part in parts}
    return bool(tables & TABLES) or any(f"'{table}'" in repr(diff) for table in TABLES)


def test_the_tables_have_the_batch_webhook_columns(database_url: str) -> None:
    inspector = inspect(get_engine(database_url))
    batches = {column["name"]: column for column in inspector.get_columns("batches")}
    assert batches["webhook"]["nullable"]
    deliveries = {column["name"]: column for column in inspector.get_columns("webhook_deliveries")}
    assert deliveries["job_id"]["nullable"] and deliveries["batch_id"]["nullable"]
    uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("webhook_deliveries")}
    assert {("job_id", "event"), ("batch_id", "event")} <= uniques
