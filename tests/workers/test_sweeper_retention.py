"""The sweeper's retention stage: finished jobs past their tenant's retention (its own
`tenants.retention_days`, else `TEXTFLEET_RETENTION_DAYS`) lose their data, the rest keep it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from sqlalchemy import update

from shared.constants import RETENTION_LOCK
from shared.db import repository, session_scope
from shared.db.models import Job, utcnow
from shared.db.tenant_models import Tenant
from shared.queueing import make_celery
from shared.schemas import JobStatus
from shared.settings import Settings, get_settings
from shared.tenancy.store import ensure_tenant
from tests.utils.factories import add_jobs, job_row
from workers import sweeper
from workers.sweeper import sweep


@pytest.fixture
def env(settings_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, redis.Redis]]:
    monkeypatch.setenv("TEXTFLEET_RETENTION_DAYS", "30")
    get_settings.cache_clear()
    settings = get_settings()
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    with session_scope(settings.database_url) as session:  # older tests' jobs are not ours to erase
        session.execute(update(Job).where(Job.erased_at.is_(None)).values(erased_at=utcnow()))
        session.execute(update(Tenant).values(retention_days=None))
    yield settings, client
    client.close()


def _finished(
    settings: Settings, tenant: str, days_ago: float, status: JobStatus = JobStatus.SUCCEEDED
) -> str:
    job = job_row("sentiment", metadata={"ticket": "T-1"})
    job.tenant_id = tenant
    job.status = status.value
    job.finished_at = utcnow() - timedelta(days=days_ago)
    job.result = {"label": "positive"}
    with session_scope(settings.database_url) as session:
        ensure_tenant(session, tenant)
        add_jobs(session, [job])
    return job.id


def _retention(settings: Settings, tenant: str, days: int | None) -> None:
    with session_scope(settings.database_url) as session:
        ensure_tenant(session, tenant)
        session.execute(update(Tenant).where(Tenant.id == tenant).values(retention_days=days))


def _erased(settings: Settings, *job_ids: str) -> dict[str, bool]:
    with session_scope(settings.database_url) as session:
        rows = [repository.get(session, job_id) for job_id in job_ids]
        return {row.id: row.erased_at is not None and row.result is None for row in rows if row is not None}


def test_each_tenant_keeps_its_jobs_for_its_own_retention(env: tuple[Settings, redis.Redis]) -> None:
    settings, client = env
    _retention(settings, "brief", 1)
    _retention(settings, "longer", 90)
    jobs = {
        "default-old": _finished(settings, "default", 31),
        "default-young": _finished(settings, "default", 29),
        "brief-old": _finished(settings, "brief", 2, JobStatus.FAILED),
        "brief-young": _finished(settings, "brief", 0.5),
        "longer-old": _finished(settings, "longer", 91, JobStatus.CANCELED),
        "longer-young": _finished(settings, "longer", 60),
    }
    done = sweep(settings, client, make_celery(settings))
    assert done["jobs_erased"] == 3
    erased = _erased(settings, *jobs.values())
    assert {name for name, job_id in jobs.items() if erased[job_id]} == {
        "default-old",
        "brief-old",
        "longer-old",
    }
    assert sweep(settings, client, make_celery(settings))["jobs_erased"] == 0  # a pass per RETENTION_PASS_S
    client.delete(RETENTION_LOCK)
    assert sweep(settings, client, make_celery(settings))["jobs_erased"] == 0  # each job once


def test_a_backlog_is_erased_in_batches(
    env: tuple[Settings, redis.Redis], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, client = env
    monkeypatch.setattr(sweeper, "SWEEP_BATCH", 2)
    monkeypatch.setattr(sweeper, "RETENTION_MAX_ROUNDS", 2)
    old = [_finished(settings, "default", 31) for _ in range(5)]
    assert sweep(settings, client, make_celery(settings))["jobs_erased"] == 4  # 2 rounds of 2
    client.delete(RETENTION_LOCK)
    assert sweep(settings, client, make_celery(settings))["jobs_erased"] == 1
    assert all(_erased(settings, *old).values())


def test_retention_can_be_turned_off(
    env: tuple[Settings, redis.Redis], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, client = env
    monkeypatch.setenv("TEXTFLEET_RETENTION_ENABLED", "false")
    settings = Settings()
    old = _finished(settings, "default", 400)
    assert sweep(settings, client, make_celery(settings))["jobs_erased"] == 0
    assert _erased(settings, old) == {old: False}
