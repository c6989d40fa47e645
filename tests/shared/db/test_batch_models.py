"""Migration 0004 creates exactly the tables `shared.db.batch_models` declares (PostgreSQL and SQLite)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shared.db.batch_models import Batch, BatchRequest, FileBlob, FileObject
from shared.db.models import Base
from shared.db.session import get_engine

TABLES = {model.__tablename__ for model in (Batch, BatchRequest, FileBlob, FileObject)}


def test_migration_matches_the_models(database_url: str) -> None:
    with get_engine(database_url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diffs = compare_metadata(context, Base.metadata)
    ours = [diff for diff in diffs if any(f"'{table}'" in repr(diff) for table in TABLES)]
    assert ours == []
