"""Worker test fixtures: a worker runtime with fake engines on the session's real database and Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import update

from shared.db import session_scope
from shared.db.models import WebhookDelivery
from shared.settings import Settings, get_settings
from shared.webhooks.queue import EPOCH_KEY
from tests.utils.fakes import FakeClassifiers, FakeEngine
from tests.utils.receiver import WebhookReceiver
from tests.utils.webhooks import SECRET, MakeSettings
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


# --- Webhook delivery (issue 17) ------------------------------------------------------------------


@pytest.fixture
def make_settings(settings_env: None, monkeypatch: pytest.MonkeyPatch) -> MakeSettings:
    """Settings for this session's services, with a webhook secret; keyword overrides are
    TEXTFLEET_<NAME> values (e.g. webhook_allow_private=False)."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "webhook_secret": SECRET,
            "webhook_allow_private": True,
            "webhook_timeout_s": 2.0,
            **overrides,
        }
        for name, value in values.items():
            env = json.dumps(value) if isinstance(value, bool) else str(value)
            monkeypatch.setenv(f"TEXTFLEET_{name.upper()}", env)
        get_settings.cache_clear()
        return get_settings()

    return make


@pytest.fixture
def webhook_redis(clean_redis_url: str, database_url: str) -> Iterator[redis.Redis]:
    """Redis with the webhook due set in steady state (epoch written); no pending delivery left by an
    earlier test in the session's database."""
    with session_scope(database_url) as session:
        session.execute(
            update(WebhookDelivery).where(WebhookDelivery.status == "pending").values(status="failed")
        )
    client = redis.Redis.from_url(clean_redis_url)
    client.set(EPOCH_KEY, "1")
    yield client
    client.close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A real local HTTP receiver (see tests.utils.receiver)."""
    with WebhookReceiver() as server:
        yield server
