"""Migration 0006 creates exactly what `shared.db.tenant_models` and the tenant columns declare
(PostgreSQL and SQLite), and existing rows belong to the default tenant."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from shared.db import batch_models, tenant_models
from shared.db.models import Base
from shared.db.session import get_engine

# Importing the modules registers their tables on `Base`.
assert batch_models.Batch and tenant_models.Tenant

TABLES = {"tenants", "api_keys", "jobs", "files", "batches", "idempotency_keys"}


def _touches_ours(diff: Any) -> bool:
    parts = diff[0] if isinstance(diff, list) else diff
    tables = {getattr(getattr(part, "table", None), "name", None) for part in parts}
    return bool(tables & TABLES) or any(f"'{table}'" in repr(diff) for table in TABLES)


def test_migration_matches_the_models(database_url: str) -> None:
    with get_engine(database_url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diffs = compare_metadata(context, Base.metadata)
    assert [diff for diff in diffs if _touches_ours(diff)] == []


def test_owned_tables_carry_a_tenant_and_idempotency_keys_are_per_tenant(database_url: str) -> None:
    inspector = inspect(get_engine(database_url))
    for table in ("jobs", "files", "batches"):
        columns = {column["name"]: column for column in inspector.get_columns(table)}
        assert not columns["tenant_id"]["nullable"]
        assert "default" in str(columns["tenant_id"]["default"])
    assert inspector.get_pk_constraint("idempotency_keys")["constrained_columns"] == ["tenant_id", "key"]
