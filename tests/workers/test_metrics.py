"""Worker metrics: executing jobs (fake engines, real database and Redis) moves the counters and
histograms the side port serves, and the scrape-time gauges read the runtime."""

from __future__ import annotations

import base64
import secrets
import threading
from datetime import timedelta
from typing import Any

import pytest
import redis
from prometheus_client import REGISTRY

from shared.constants import TaskName
from shared.db.models import utcnow
from shared.schemas import JobStatus
from shared.settings import get_settings
from shared.webhooks import queue as webhook_queue
from tests.utils.factories import insert_job
from tests.utils.fakes import FakeClassifiers, FakeEngine
from tests.utils.webhooks import deliver_due
from workers.batching import MicroBatcher
from workers.execution import execute
from workers.metrics import instrument_runtime
from workers.runtime import WorkerRuntime


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _insert(rt: WorkerRuntime, task: str, **fields: Any) -> str:
    return insert_job(rt.settings.database_url, task, **fields)


def test_jobs_move_finished_run_time_wait_and_tokens(runtime: WorkerRuntime) -> None:
    gen = {"task": "generate", "status": "succeeded"}
    before = {
        "finished": metric("textfleet_jobs_finished_total", **gen),
        "failed": metric("textfleet_jobs_finished_total", task="generate", status="failed"),
        "sentiment": metric("textfleet_jobs_finished_total", task="sentiment", status="succeeded"),
        "run": metric("textfleet_job_run_seconds_count", **gen),
        "wait": metric("textfleet_job_queue_wait_seconds_count", task="generate"),
        "wait_sum": metric("textfleet_job_queue_wait_seconds_sum", task="generate"),
        "slow_wait": metric("textfleet_job_queue_wait_seconds_bucket", task="generate", le="30.0"),
        "prompt": metric("textfleet_prompt_tokens_total"),
        "generated": metric("textfleet_generated_tokens_total"),
    }
    # created a minute ago: its queue wait is about 60 s
    old = _insert(
        runtime,
        "generate",
        input_={"prompt": "one two three four"},
        params={"max_tokens": 3},
        created_at=utcnow() - timedelta(seconds=60),
    )
    fresh = _insert(runtime, "generate", input_={"prompt": "alpha beta"}, params={"max_tokens": 5})
    failing = _insert(runtime, "generate", input_={"prompt": "FAIL please"})
    sentiment = _insert(runtime, "sentiment")
    assert execute(old, TaskName.GENERATE, runtime) is JobStatus.SUCCEEDED
    assert execute(fresh, TaskName.GENERATE, runtime) is JobStatus.SUCCEEDED
    assert execute(failing, TaskName.GENERATE, runtime) is JobStatus.FAILED
    assert execute(sentiment, TaskName.SENTIMENT, runtime) is JobStatus.SUCCEEDED
    assert execute(old, TaskName.GENERATE, runtime) is None  # a redelivered message counts nothing

    assert metric("textfleet_jobs_finished_total", **gen) - before["finished"] == 2
    assert metric("textfleet_jobs_finished_total", task="generate", status="failed") - before["failed"] == 1
    sentiment_done = metric("textfleet_jobs_finished_total", task="sentiment", status="succeeded")
    assert sentiment_done - before["sentiment"] == 1
    assert metric("textfleet_job_run_seconds_count", **gen) - before["run"] == 2
    assert metric("textfleet_job_run_seconds_count", task="generate", status="failed") >= 1
    assert metric("textfleet_job_queue_wait_seconds_count", task="generate") - before["wait"] == 3
    waited = metric("textfleet_job_queue_wait_seconds_sum", task="generate") - before["wait_sum"]
    assert 60 <= waited < 120
    # two of the three waited less than 30 s
    slow = metric("textfleet_job_queue_wait_seconds_bucket", task="generate", le="30.0") - before["slow_wait"]
    assert slow == 2
    # prompts of 4 and 2 words; 3 and 2 tokens generated (the failed job has no usage)
    assert metric("textfleet_prompt_tokens_total") - before["prompt"] == 6
    assert metric("textfleet_generated_tokens_total") - before["generated"] == 5


def test_expired_and_requeued_jobs(runtime: WorkerRuntime) -> None:
    expired_before = metric("textfleet_jobs_finished_total", task="sentiment", status="expired")
    requeued_before = metric("textfleet_job_run_seconds_count", task="generate", status="requeued")
    expired = _insert(runtime, "sentiment", params={"ttl_s": 1}, created_at=utcnow() - timedelta(seconds=10))
    assert execute(expired, TaskName.SENTIMENT, runtime) is JobStatus.EXPIRED
    assert metric("textfleet_jobs_finished_total", task="sentiment", status="expired") - expired_before == 1

    busy = _insert(runtime, "generate", input_={"prompt": "BUSY"})
    assert execute(busy, TaskName.GENERATE, runtime) is None  # transient: back to the queue
    assert (
        metric("textfleet_job_run_seconds_count", task="generate", status="requeued") - requeued_before == 1
    )


class _Batching(FakeClassifiers):
    def __init__(self) -> None:
        super().__init__()
        self.batcher: MicroBatcher[int, int] = MicroBatcher(
            lambda items: [i * 2 for i in items], max_batch=8, max_wait_ms=200
        )

    def close(self) -> None:
        self.batcher.close()


class _Busy(FakeEngine):
    def running(self) -> int:
        return 7


def test_scrape_time_gauges_and_batch_sizes(settings_env: None) -> None:
    settings = get_settings()
    classifiers = _Batching()
    rt = WorkerRuntime(
        settings=settings,
        hostname="test-worker",
        redis=redis.Redis.from_url(settings.redis_url),
        generation=_Busy(),
        classifiers=classifiers,
    )
    try:
        instrument_runtime(rt)
        instrument_runtime(rt)  # idempotent: batches are observed once
        rt.in_flight.update({"a", "b", "c"})
        assert metric("textfleet_worker_in_flight_jobs") == 3
        assert metric("textfleet_engine_running_requests") == 7
        count_before = metric("textfleet_engine_batch_size_count")
        sum_before = metric("textfleet_engine_batch_size_sum")
        start = threading.Barrier(5)

        def submit(i: int) -> int:
            start.wait()
            return classifiers.batcher.submit(i).result(timeout=5)

        threads = [threading.Thread(target=submit, args=(i,)) for i in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert classifiers.batcher.submit(10).result(timeout=5) == 20
        batches = metric("textfleet_engine_batch_size_count") - count_before
        assert batches == classifiers.batcher.stats.batches
        assert metric("textfleet_engine_batch_size_sum") - sum_before == 6
    finally:
        rt.in_flight.clear()
        rt.close()


def test_webhook_deliveries_count_outcomes(settings_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "TEXTFLEET_WEBHOOK_SECRET", "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    )
    get_settings.cache_clear()
    settings = get_settings()
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    client.set(webhook_queue.EPOCH_KEY, "1")
    try:
        before = metric("textfleet_webhook_deliveries_total", outcome="skipped")
        webhook_queue.enqueue(client, ["msg_01ARZ3NDEKTSV4RRFFQ69G5FAV"])  # no such delivery
        deliver_due(settings, client)
        assert metric("textfleet_webhook_deliveries_total", outcome="skipped") - before == 1
    finally:
        client.flushdb()
        client.close()
