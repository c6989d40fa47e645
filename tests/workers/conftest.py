"""Worker test fixtures: a worker runtime with fake engines on the session's real database and Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from shared.settings import get_settings
from tests.utils.fakes import FakeClassifiers, FakeEngine
from workers.runtime import WorkerRuntime


@pytest.fixture
def runtime_env() -> dict[str, str]:
    """Extra TEXTFLEET_* settings for `runtime` (override in a test module)."""
    return {}


@pytest.fixture
def runtime(
    settings_env: None, monkeypatch: pytest.MonkeyPatch, runtime_env: dict[str, str]
) -> Iterator[WorkerRuntime]:
    """A worker runtime with FakeEngine and FakeClassifiers, an empty Redis database and real settings."""
    for name, value in runtime_env.items():
        monkeypatch.setenv(f"TEXTFLEET_{name.upper()}", value)
    get_settings.cache_clear()
    settings = get_settings()
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    rt = WorkerRuntime(
        settings=settings,
        hostname="test-worker",
        redis=client,
        generation=FakeEngine(),
        classifiers=FakeClassifiers(),
    )
    yield rt
    rt.close()
