"""Session-wide fixtures: real Redis and databases (PostgreSQL and SQLite), settings per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared.db.migrate import upgrade
from shared.settings import get_settings
from tests.utils.machine import describe_load
from tests.utils.services import postgres_database, redis_database

# Most tests exercise job semantics on an open API (every caller the default tenant, every scope);
# the tests of tenants and keys turn authentication on for their own app (`auth_enabled="true"`).
# Subprocesses started by tests (the API, workers, `textfleet dev`) inherit this.
os.environ["TEXTFLEET_AUTH_ENABLED"] = "false"


def pytest_report_header() -> str:
    """How busy the machine is as the run starts (a slow run on a loaded machine explains itself)."""
    return describe_load()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The same at the end: a fleet process the run's own tests left behind shows here."""
    terminalreporter.write_line(describe_load())


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis database of this session's own."""
    with redis_database() as url:
        yield url


@pytest.fixture(scope="session", params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty database: PostgreSQL and SQLite in turn."""
    if request.param == "postgresql":
        with postgres_database() as url:
            upgrade(url)
            yield url
    else:
        path: Path = tmp_path_factory.mktemp("sqlite") / "textfleet.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        yield url


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch, database_url: str, redis_url: str) -> Iterator[None]:
    """Point TEXTFLEET_* settings at this session's services for one test."""
    monkeypatch.setenv("TEXTFLEET_DATABASE_URL", database_url)
    monkeypatch.setenv("TEXTFLEET_REDIS_URL", redis_url)
    # Tests' placeholder webhook hosts do not resolve here: allow them by name (no lookup at submission).
    monkeypatch.setenv("TEXTFLEET_WEBHOOK_ALLOW", "example.com,*.example.com")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def clean_redis_url(redis_url: str) -> Iterator[str]:
    """The session's Redis database, emptied before and after the test."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield redis_url
    client.flushdb()
    client.close()
