"""Refunds at the one terminal path (`shared.lifecycle`): a job's unused tokens and its place among the
unfinished jobs come back once, whichever way it ends (worker, cancel, expiry at claim), however
often its end is reported."""

from __future__ import annotations

import secrets
from datetime import timedelta

import redis
from sqlalchemy import update

from shared.db import session_scope
from shared.db.models import Job, utcnow
from shared.lifecycle import Completion, end_jobs
from shared.quotas.budget import Request, reserve, usage
from shared.schemas import JobStatus
from tests.utils.factories import insert_job
from workers.store import JobStore


def _reserved(client: redis.Redis, job_ids: list[str], tokens: int) -> str:
    tenant = f"refund-{secrets.token_hex(3)}"
    reserve(client, [Request(tenant, 100, 10_000, 10_000, [(job_id, tokens) for job_id in job_ids])])
    return tenant


def test_a_finished_job_returns_what_it_did_not_use_once(database_url: str, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    job_id = insert_job(database_url, "generate")
    tenant = _reserved(client, [job_id], 200)
    with session_scope(database_url) as session:
        session.execute(update(Job).where(Job.id == job_id).values(status="running", worker="w"))
    done = Completion(
        job_id, JobStatus.SUCCEEDED, result={"text": "x"}, usage={"prompt_tokens": 3, "completion_tokens": 70}
    )
    with session_scope(database_url) as session:
        assert end_jobs(session, client, [done])[0] is not None
    with session_scope(database_url) as session:  # reported again, then canceled: both ignored
        assert end_jobs(session, client, [done, Completion.canceled(job_id)]) == [None, None]
    held = usage(client, tenant)
    assert (held.open_jobs, held.tokens_this_minute, held.tokens_today) == (0, 70, 70)
    client.close()


def test_canceled_and_expired_jobs_return_everything(database_url: str, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    canceled = insert_job(database_url, "generate")
    expired = insert_job(
        database_url, "generate", params={"ttl_s": 1}, created_at=utcnow() - timedelta(seconds=60)
    )
    tenant = _reserved(client, [canceled, expired], 100)
    with session_scope(database_url) as session:
        assert end_jobs(session, client, [Completion.canceled(canceled)])[0] is not None
    store = JobStore(database_url, client)
    try:
        claim = store.claim(expired, "w")  # its TTL passed: ends expired at the claim
        assert claim is not None and claim.expired
    finally:
        store.close()
    held = usage(client, tenant)
    assert (held.open_jobs, held.tokens_today) == (0, 0)
    client.close()
