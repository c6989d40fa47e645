"""Erasure in the repository: a finished job loses its input, params, metadata, result and error text
and keeps its accounting (task, status, tenant, tokens, timings); nothing else is touched."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from sqlalchemy import update

from shared.db import job_queries, repository, session_scope
from shared.db.models import Job, utcnow
from shared.schemas import JobStatus
from tests.utils.factories import add_jobs, job_row

MARKER = "MRK" + secrets.token_hex(8)


@pytest.fixture
def url(settings_env: None, database_url: str) -> str:
    with session_scope(database_url) as session:  # older tests' jobs are not ours to erase
        session.execute(update(Job).where(Job.erased_at.is_(None)).values(erased_at=utcnow()))
    return database_url


def _add(
    url: str, status: JobStatus, *, tenant: str = "default", ended_days_ago: float = 40, **values: object
) -> str:
    job = job_row("generate", input_={"prompt": MARKER}, params={"max_tokens": 7}, metadata={"k": MARKER})
    now = utcnow()
    job.status = status.value
    job.tenant_id = tenant
    if status.is_terminal:
        job.started_at = now - timedelta(days=ended_days_ago, seconds=3)
        job.finished_at = now - timedelta(days=ended_days_ago)
        job.result = {"text": MARKER}
        job.prompt_tokens, job.completion_tokens = 11, 7
    for name, value in values.items():
        setattr(job, name, value)
    with session_scope(url) as session:
        add_jobs(session, [job])
    return job.id


def _row(url: str, job_id: str) -> Job:
    with session_scope(url) as session:
        job = repository.get(session, job_id)
        assert job is not None
        session.expunge(job)
        return job


def test_erase_drops_the_data_and_keeps_the_accounting(url: str) -> None:
    done = _add(url, JobStatus.SUCCEEDED)
    failed = _add(url, JobStatus.FAILED, error={"code": "invalid_output", "message": f"{MARKER!r} is bad"})
    before = _row(url, done)
    now = utcnow()
    with session_scope(url) as session:
        assert sorted(repository.erase(session, [done, failed], now=now)) == sorted([done, failed])
    after = _row(url, done)
    assert (after.input, after.params, after.meta, after.result, after.error) == ({}, {}, {}, None, None)
    assert after.erased_at == now
    kept = ("task", "status", "tenant_id", "priority", "attempts", "prompt_tokens", "completion_tokens")
    kept += ("created_at", "started_at", "finished_at")
    assert {k: getattr(after, k) for k in kept} == {k: getattr(before, k) for k in kept}
    assert _row(url, failed).error == {"code": "invalid_output", "message": repository.ERASED_MESSAGE}
    out = repository.to_out(after)
    assert out.erased_at == now and out.usage is not None and out.usage.prompt_tokens == 11
    assert MARKER not in out.model_dump_json()


def test_erase_leaves_unfinished_and_erased_jobs_alone(url: str) -> None:
    queued = _add(url, JobStatus.QUEUED)
    running = _add(url, JobStatus.RUNNING)
    done = _add(url, JobStatus.CANCELED)
    first = utcnow()
    with session_scope(url) as session:
        assert repository.erase(session, [queued, running, done], now=first) == [done]
    with session_scope(url) as session:
        assert repository.erase(session, [done], now=first + timedelta(hours=1)) == []  # once
    assert _row(url, done).erased_at == first
    assert _row(url, queued).input == {"prompt": MARKER}
    assert _row(url, running).meta == {"k": MARKER}


def test_erasable_picks_finished_jobs_past_the_cutoff_per_tenant(url: str) -> None:
    old_a = _add(url, JobStatus.SUCCEEDED, tenant="acme", ended_days_ago=40)
    new_a = _add(url, JobStatus.SUCCEEDED, tenant="acme", ended_days_ago=1)
    old_b = _add(url, JobStatus.EXPIRED, tenant="beta", ended_days_ago=40)
    _add(url, JobStatus.QUEUED, tenant="beta", created_at=utcnow() - timedelta(days=90))
    cutoff = utcnow() - timedelta(days=30)
    with session_scope(url) as session:
        assert job_queries.erasable(session, before=cutoff, limit=10) == sorted([old_a, old_b])
        assert job_queries.erasable(session, before=cutoff, limit=10, tenants=["acme"]) == [old_a]
        assert job_queries.erasable(session, before=cutoff, limit=10, exclude=["acme"]) == [old_b]
        assert job_queries.erasable(session, before=cutoff, limit=1) == [min(old_a, old_b)]
        assert job_queries.erasable(session, before=utcnow(), limit=10, tenants=["acme"]) == sorted(
            [old_a, new_a]
        )
