"""The batched job store: claims and completions from many threads share transactions."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import redis

from shared.db import repository, session_scope
from shared.lifecycle import Completion
from shared.schemas import JobStatus
from tests.utils.factories import add_jobs, job_row
from workers.store import JobStore


def test_batched_claims_and_finishes(database_url: str, clean_redis_url: str) -> None:
    jobs = [job_row("sentiment") for _ in range(120)]
    with session_scope(database_url) as session:
        add_jobs(session, jobs)
    client = redis.Redis.from_url(clean_redis_url)
    store = JobStore(database_url, client, max_wait_ms=5)
    try:
        with ThreadPoolExecutor(24) as pool:
            claims = list(pool.map(lambda j: store.claim(j.id, "w"), jobs))
            again = list(pool.map(lambda j: store.claim(j.id, "w2"), jobs))
            won = list(
                pool.map(lambda j: store.finish(Completion(j.id, JobStatus.SUCCEEDED, result={"n": 1})), jobs)
            )
            twice = list(pool.map(lambda j: store.finish(Completion(j.id, JobStatus.FAILED)), jobs))
        assert all(c is not None and c.input == {"text": "This is wonderful!"} for c in claims)
        assert again == [None] * len(jobs)
        assert won == [True] * len(jobs)
        assert twice == [False] * len(jobs)
        # Fewer transactions than jobs: the point of batching.
        assert store._claims.stats.batches < len(jobs)
        assert store._finishes.stats.batches < len(jobs)
    finally:
        store.close()
        client.close()
    with session_scope(database_url) as session:
        rows = [repository.get(session, j.id) for j in jobs]
    assert {r.status for r in rows if r} == {"succeeded"}
    assert {r.worker for r in rows if r} == {"w"}
    assert {r.attempts for r in rows if r} == {1}


def test_a_claim_batch_claims_a_job_named_twice_once_and_skips_jobs_not_queued(
    database_url: str, clean_redis_url: str
) -> None:
    queued, canceled = job_row("sentiment"), job_row("risk")
    with session_scope(database_url) as session:
        add_jobs(session, [queued, canceled])
        repository.finish(session, canceled.id, JobStatus.CANCELED, expected=JobStatus.QUEUED)
    client = redis.Redis.from_url(clean_redis_url)
    store = JobStore(database_url, client)
    try:
        items = [(queued.id, "w"), (canceled.id, "w"), (queued.id, "w"), ("0" * 26, "w")]
        claims = store._claim_batch(items)
    finally:
        store.close()
        client.close()
    assert [c is not None for c in claims] == [True, False, False, False]
    assert claims[0] is not None and claims[0].attempts == 1
    with session_scope(database_url) as session:
        row = repository.get(session, queued.id)
        assert row is not None and (row.status, row.worker) == ("running", "w")
        assert repository.claim_many(session, [queued.id, canceled.id], "w2") == {}
