"""Fixtures of the API tests: an app per test on the session's real Redis and databases.

Every test that uses `api` starts from an empty `jobs` table and an empty Redis database (both are
this session's own), and builds its app with `create_app()` after settings are in the environment.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select, update

from api.app import create_app
from shared.constants import Queue
from shared.db.models import Job
from shared.db.session import session_scope
from shared.settings import get_settings
from tests.utils.live_api import LiveApi, live_api

MakeClient = Callable[..., TestClient]
Serve = Callable[..., LiveApi]


class Broker:
    """Reads what the API put on the Celery queues (Redis lists `<queue>` and `<queue>:<N>`)."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)

    def messages(self) -> list[tuple[str, dict[str, Any]]]:
        """(list key, decoded message) of every message waiting on any queue."""
        found: list[tuple[str, dict[str, Any]]] = []
        for queue in Queue:
            # `<queue>` holds Celery priority 0, `<queue>:<N>` priority N (all Redis lists)
            keys = [queue.value, *(k.decode() for k in self.client.keys(f"{queue.value}:*"))]
            for key in keys:
                for raw in self.client.lrange(key, 0, -1):
                    found.append((key, json.loads(raw)))
        return found

    def jobs(self) -> dict[str, tuple[str, str]]:
        """job id -> (list key, Celery task name) of every queued job (a message carries one or a group)."""
        out: dict[str, tuple[str, str]] = {}
        for key, message in self.messages():
            job_ids, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            for job_id in job_ids:
                out[job_id] = (key, message["headers"]["task"])
        return out

    def close(self) -> None:
        self.client.close()


class Rows:
    """Direct reads and writes of the `jobs` table (what workers would do)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def count(self) -> int:
        with session_scope(self.url) as session:
            return int(session.scalar(select(func.count()).select_from(Job)) or 0)

    def get(self, job_id: str) -> Job | None:
        with session_scope(self.url) as session:
            return session.get(Job, job_id)

    def set(self, job_id: str, **values: Any) -> None:
        with session_scope(self.url) as session:
            session.execute(update(Job).where(Job.id == job_id).values(**values))

    def add(self, *jobs: Job) -> None:
        with session_scope(self.url) as session:
            session.add_all(jobs)


@pytest.fixture
def clean(settings_env: None, database_url: str, redis_url: str) -> None:
    """Empty jobs table and Redis database before the test."""
    with session_scope(database_url) as session:
        session.execute(delete(Job))
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()


@pytest.fixture
def make_client(clean: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeClient]:
    """Build an app (after applying extra TEXTFLEET_* env) and a started TestClient for it."""
    with ExitStack() as stack:

        def build(**env: str) -> TestClient:
            for name, value in env.items():
                monkeypatch.setenv(f"TEXTFLEET_{name.upper()}", value)
            get_settings.cache_clear()
            return stack.enter_context(TestClient(create_app()))

        yield build


@pytest.fixture
def api(make_client: MakeClient) -> TestClient:
    """A started client on an app with the test's default settings."""
    return make_client()


@pytest.fixture
def broker(redis_url: str) -> Iterator[Broker]:
    b = Broker(redis_url)
    yield b
    b.close()


@pytest.fixture
def rows(database_url: str) -> Rows:
    return Rows(database_url)


@pytest.fixture
def serve(clean: None, tmp_path: Path) -> Iterator[Serve]:
    """Start the API for real (`textfleet api`, real HTTP) on the test's services, with extra settings
    (`serve(log_format="json")`); each one's whole output goes to a log file the test can read."""
    with ExitStack() as stack:
        started = 0

        def start(**env: str) -> LiveApi:
            nonlocal started
            started += 1
            return stack.enter_context(live_api(tmp_path / f"api-{started}.log", **env))

        yield start
