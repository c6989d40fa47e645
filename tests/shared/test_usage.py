"""`shared.usage`: what a job adds to its tenant's usage, and the `textfleet_usage_*` counters moved once
per job at its terminal state (through `shared.lifecycle`, on a real database and Redis)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from prometheus_client import REGISTRY
from prometheus_client.samples import Sample
from sqlalchemy import update
from ulid import ULID

from shared.db import session_scope
from shared.db.models import Job, utcnow
from shared.lifecycle import Completion, end_jobs
from shared.schemas import JobStatus
from shared.usage import JobUsage, classified_texts, count_ended, run_seconds
from tests.utils.factories import add_jobs, job_row, load_job

pytestmark = pytest.mark.timeout(60)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _tenant() -> str:
    return f"usage-{str(ULID()).lower()}"


def test_classified_texts_counts_each_text_of_classifier_jobs_only() -> None:
    assert classified_texts("moderate", {"text": "one"}) == 1
    assert classified_texts("moderate", {"text": ["one", "two", "three"]}) == 3
    assert classified_texts("sentiment", {"text": "x"}) == 1
    assert classified_texts("entities", {"text": []}) == 0
    assert classified_texts("generate", {"prompt": "hi"}) is None
    assert classified_texts("summarize", {"text": "a text to summarize"}) is None


def test_run_seconds_is_start_to_end_and_zero_without_a_start() -> None:
    now = utcnow()
    assert run_seconds(now - timedelta(seconds=2.5), now) == 2.5
    assert run_seconds(None, now) == 0.0
    assert run_seconds(now, now - timedelta(seconds=1)) == 0.0  # clocks never make it negative


def test_count_ended_moves_each_counter_by_the_job_amounts() -> None:
    tenant = _tenant()
    count_ended(
        [
            JobUsage(tenant, "generate", "succeeded", prompt_tokens=7, completion_tokens=3, run_seconds=1.5),
            JobUsage(tenant, "generate", "failed", run_seconds=0.25),
            JobUsage(tenant, "moderate", "succeeded", classified_texts=4, run_seconds=0.5),
            JobUsage(tenant, "moderate", "expired"),
        ]
    )
    assert metric("textfleet_usage_jobs_total", tenant=tenant, task="generate", status="succeeded") == 1
    assert metric("textfleet_usage_jobs_total", tenant=tenant, task="generate", status="failed") == 1
    assert metric("textfleet_usage_jobs_total", tenant=tenant, task="moderate", status="expired") == 1
    assert metric("textfleet_usage_prompt_tokens_total", tenant=tenant, task="generate") == 7
    assert metric("textfleet_usage_completion_tokens_total", tenant=tenant, task="generate") == 3
    assert metric("textfleet_usage_classified_texts_total", tenant=tenant, task="moderate") == 4
    assert metric("textfleet_usage_run_seconds_total", tenant=tenant, task="generate") == 1.75
    assert metric("textfleet_usage_run_seconds_total", tenant=tenant, task="moderate") == 0.5
    # amounts that never moved have no series (bounded cardinality)
    samples = {s.labels.get("task") for s in _samples("textfleet_usage_prompt_tokens_total", tenant)}
    assert samples == {"generate"}


def _samples(name: str, tenant: str) -> list[Sample]:
    return [
        s
        for family in REGISTRY.collect()
        for s in family.samples
        if s.name == name and s.labels.get("tenant") == tenant
    ]


@pytest.fixture
def client(clean_redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(clean_redis_url)
    yield client
    client.close()


def test_end_jobs_counts_each_job_once_with_what_its_row_holds(
    database_url: str, client: redis.Redis
) -> None:
    tenant, other = _tenant(), _tenant()
    started = utcnow() - timedelta(seconds=3)
    gen, mod, queued, foreign = job_row("generate"), job_row("moderate"), job_row("sentiment"), job_row()
    with session_scope(database_url) as session:
        add_jobs(session, [gen, mod, queued, foreign])
    with session_scope(database_url) as session:
        session.execute(update(Job).where(Job.id.in_([gen.id, mod.id, queued.id])).values(tenant_id=tenant))
        session.execute(update(Job).where(Job.id == foreign.id).values(tenant_id=other))
        session.execute(
            update(Job)
            .where(Job.id.in_([gen.id, mod.id, foreign.id]))
            .values(status="running", worker="w1", started_at=started)
        )
    completions = [
        Completion(
            gen.id,
            JobStatus.SUCCEEDED,
            result={"text": "x"},
            usage={"prompt_tokens": 11, "completion_tokens": 5},
            worker="w1",
        ),
        Completion(mod.id, JobStatus.SUCCEEDED, result={}, classified_texts=3, worker="w1"),
        Completion.canceled(queued.id),
        Completion(foreign.id, JobStatus.FAILED, error={"code": "x", "message": "y"}, worker="w1"),
        # a late second completion of the same job writes and counts nothing
        Completion(gen.id, JobStatus.FAILED, error={"code": "late", "message": "z"}, worker="w1"),
    ]
    with session_scope(database_url) as session:
        ended = end_jobs(session, client, completions)
    assert [e is not None for e in ended] == [True, True, True, True, False]

    assert load_job(database_url, mod.id).classified_texts == 3
    jobs = {
        (task, status): metric("textfleet_usage_jobs_total", tenant=tenant, task=task, status=status)
        for task, status in [("generate", "succeeded"), ("moderate", "succeeded"), ("sentiment", "canceled")]
    }
    assert jobs == {("generate", "succeeded"): 1, ("moderate", "succeeded"): 1, ("sentiment", "canceled"): 1}
    assert metric("textfleet_usage_jobs_total", tenant=tenant, task="generate", status="failed") == 0
    assert metric("textfleet_usage_prompt_tokens_total", tenant=tenant, task="generate") == 11
    assert metric("textfleet_usage_completion_tokens_total", tenant=tenant, task="generate") == 5
    assert metric("textfleet_usage_classified_texts_total", tenant=tenant, task="moderate") == 3
    gen_row = load_job(database_url, gen.id)
    assert gen_row.started_at is not None and gen_row.finished_at is not None
    expected_s = (gen_row.finished_at - gen_row.started_at).total_seconds()
    assert metric("textfleet_usage_run_seconds_total", tenant=tenant, task="generate") == pytest.approx(
        expected_s
    )
    assert expected_s >= 3
    assert metric("textfleet_usage_run_seconds_total", tenant=tenant, task="sentiment") == 0  # never ran
    assert metric("textfleet_usage_jobs_total", tenant=other, task="sentiment", status="failed") == 1
