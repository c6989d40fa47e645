"""The sweeper: expired, stranded and abandoned jobs are found and dealt with (real DB and Redis)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from sqlalchemy import update

from shared.constants import outstanding_key
from shared.db import repository, session_scope
from shared.db.models import Job, utcnow
from shared.queueing import make_celery
from shared.settings import Settings, get_settings
from tests.utils.factories import add_jobs, job_row
from workers.heartbeat import heartbeat_key
from workers.sweeper import Sweeper, sweep


@pytest.fixture
def env(settings_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, redis.Redis]]:
    monkeypatch.setenv("TEXTFLEET_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("TEXTFLEET_REQUEUE_AFTER_S", "60")
    get_settings.cache_clear()
    settings = get_settings()
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    with session_scope(settings.database_url) as session:
        session.execute(update(Job).values(status="succeeded"))  # older tests' jobs are not ours to sweep
    yield settings, client
    client.close()


def _insert(settings: Settings, task: str = "sentiment", **fields: object) -> str:
    job = job_row(task, **fields)
    with session_scope(settings.database_url) as session:
        add_jobs(session, [job])
    return job.id


def _set(settings: Settings, job_id: str, **values: object) -> None:
    with session_scope(settings.database_url) as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def _get(settings: Settings, job_id: str) -> Job:
    with session_scope(settings.database_url) as session:
        job = repository.get(session, job_id)
        assert job is not None
        return job


def _messages(client: redis.Redis) -> list[str]:
    """The job ids of the messages waiting on the classify queue (each message carries one or a group)."""
    return [
        job_id
        for key in client.scan_iter(match="classify*")
        for raw in client.lrange(key, 0, -1)
        for job_id in json.loads(base64.b64decode(json.loads(raw)["body"]))[0]
    ]


def test_sweep_handles_every_kind(env: tuple[Settings, redis.Redis]) -> None:
    settings, client = env
    now = utcnow()
    celery = make_celery(settings)
    expired = _insert(settings, params={"ttl_s": 5}, created_at=now - timedelta(seconds=30))
    fresh = _insert(settings, params={"ttl_s": 500})
    stale = _insert(settings, created_at=now - timedelta(seconds=600))
    _set(settings, stale, enqueued_at=now - timedelta(seconds=600))
    orphan = _insert(settings)
    _set(settings, orphan, status="running", worker="dead@host", started_at=now, attempts=1)
    exhausted = _insert(settings)
    _set(settings, exhausted, status="running", worker="dead@host", started_at=now, attempts=2)
    overdue = _insert(settings, params={"timeout_s": 1})
    _set(
        settings,
        overdue,
        status="running",
        worker="live@host",
        started_at=now - timedelta(seconds=120),
        attempts=1,
    )
    healthy = _insert(settings)
    _set(settings, healthy, status="running", worker="live@host", started_at=now, attempts=1)
    client.set(heartbeat_key("classify", "live@host"), "{}")
    client.zadd(outstanding_key("classify"), {expired: 1, healthy: 2, "01DONEDONEDONEDONEDONEDONE": 0})

    done = sweep(settings, client, celery)

    assert _get(settings, expired).status == "expired"
    assert _get(settings, fresh).status == "queued"
    assert _get(settings, stale).status == "queued"
    assert _get(settings, orphan).status == "queued" and _get(settings, orphan).worker is None
    failed = _get(settings, exhausted)
    assert failed.status == "failed" and failed.error["code"] == "worker_lost"  # type: ignore[index]
    late = _get(settings, overdue)
    assert late.status == "failed" and late.error["code"] == "timeout"  # type: ignore[index]
    assert _get(settings, healthy).status == "running"
    assert sorted(_messages(client)) == sorted([stale, orphan])
    assert done["expired"] == 1 and done["requeued_stale"] == 1 and done["recovered_running"] == 1
    assert done["failed_worker_lost"] == 1 and done["failed_timeout"] == 1
    members = {m.decode() for m in client.zrange(outstanding_key("classify"), 0, -1)}
    assert members == {healthy, stale, orphan}  # re-sent jobs are outstanding again

    # A second sweep finds nothing new to do with the same jobs.
    again = sweep(settings, client, celery)
    assert "expired" not in again and "recovered_running" not in again


def test_one_sweeper_per_interval(env: tuple[Settings, redis.Redis]) -> None:
    settings, client = env
    celery = make_celery(settings)
    first, second = Sweeper(settings, client, celery, "a"), Sweeper(settings, client, celery, "b")
    assert first.run_once() is not None
    assert second.run_once() is None


def test_a_missing_heartbeat_must_persist_before_jobs_are_taken(
    env: tuple[Settings, redis.Redis], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, client = env
    monkeypatch.setattr(settings, "worker_heartbeat_s", 0.2)
    celery = make_celery(settings)
    job_id = _insert(settings)
    _set(settings, job_id, status="running", worker="blip@host", started_at=utcnow(), attempts=1)
    memory: dict[tuple[str, str], float] = {}
    first = sweep(settings, client, celery, memory)  # e.g. just after a Redis restart
    assert "recovered_running" not in first and _get(settings, job_id).status == "running"
    import time

    time.sleep(0.5)
    second = sweep(settings, client, celery, memory)
    assert second["recovered_running"] == 1 and _get(settings, job_id).status == "queued"
