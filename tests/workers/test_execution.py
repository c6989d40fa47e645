"""Job execution: claiming, results, failures and idempotency, on a real database and Redis."""

from __future__ import annotations

import json
import threading

import pytest

from shared.constants import TaskName, job_events_channel
from shared.db import repository, session_scope
from shared.db.models import Job
from shared.schemas import JobStatus
from tests.utils.factories import insert_job, load_job
from tests.utils.fakes import FakeClassifiers
from workers.execution import execute
from workers.runtime import WorkerRuntime


def _insert(rt: WorkerRuntime, task: str, **fields: object) -> str:
    return insert_job(rt.settings.database_url, task, **fields)


def _load(rt: WorkerRuntime, job_id: str) -> Job:
    return load_job(rt.settings.database_url, job_id)


def test_generate_succeeds_with_usage(runtime: WorkerRuntime) -> None:
    job_id = _insert(runtime, "generate", input_={"prompt": "one two three"}, params={"max_tokens": 2})
    assert execute(job_id, TaskName.GENERATE, runtime) is JobStatus.SUCCEEDED
    job = _load(runtime, job_id)
    assert job.status == "succeeded"
    assert job.result == {
        "text": "one two",
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    }
    assert job.usage == {"prompt_tokens": 3, "completion_tokens": 2}
    assert job.attempts == 1 and job.worker == "test-worker"
    assert job.started_at is not None and job.finished_at is not None
    assert job.started_at <= job.finished_at


def test_chat_messages_and_default_max_tokens(runtime: WorkerRuntime) -> None:
    job_id = _insert(runtime, "generate", input_={"messages": [{"role": "user", "content": "hi"}]}, params={})
    execute(job_id, TaskName.GENERATE, runtime)
    request = runtime.generation.requests[-1]  # type: ignore[union-attr]
    assert request.messages == [{"role": "user", "content": "hi"}]
    assert request.max_tokens == runtime.settings.default_max_tokens


def test_summarize_uses_template(runtime: WorkerRuntime) -> None:
    job_id = _insert(runtime, "summarize", input_={"text": "alpha beta gamma"}, params={"max_tokens": 50})
    assert execute(job_id, TaskName.SUMMARIZE, runtime) is JobStatus.SUCCEEDED
    request = runtime.generation.requests[-1]  # type: ignore[union-attr]
    assert request.messages is not None and "alpha beta gamma" in request.messages[-1]["content"]
    assert request.max_tokens == 50
    assert "alpha beta gamma" in _load(runtime, job_id).result["summary"]  # type: ignore[index]


@pytest.mark.parametrize("task", ["moderate", "risk", "sentiment"])
def test_classifiers_write_valid_results(runtime: WorkerRuntime, task: str) -> None:
    job_id = _insert(runtime, task)
    assert execute(job_id, TaskName(task), runtime) is JobStatus.SUCCEEDED
    result = _load(runtime, job_id).result
    assert result is not None
    key = {"moderate": "flagged", "risk": "score", "sentiment": "label"}[task]
    assert key in result


def test_model_error_fails_job_and_worker_keeps_serving(runtime: WorkerRuntime) -> None:
    bad = _insert(runtime, "generate", input_={"prompt": "FAIL please"})
    assert execute(bad, TaskName.GENERATE, runtime) is JobStatus.FAILED
    assert _load(runtime, bad).error == {"code": "engine_error", "message": "the model refused this input"}
    crash = _insert(runtime, "moderate", input_={"text": "CRASH"})
    runtime.classifiers = FakeClassifiers(fail_on="CRASH")
    assert execute(crash, TaskName.MODERATE, runtime) is JobStatus.FAILED
    assert _load(runtime, crash).error["code"] == "model_error"  # type: ignore[index]
    good = _insert(runtime, "generate", input_={"prompt": "fine"})
    assert execute(good, TaskName.GENERATE, runtime) is JobStatus.SUCCEEDED


def test_unexpected_exception_is_internal_error(runtime: WorkerRuntime) -> None:
    job_id = _insert(runtime, "generate", input_={"prompt": "CRASH"})
    assert execute(job_id, TaskName.GENERATE, runtime) is JobStatus.FAILED
    error = _load(runtime, job_id).error
    assert error is not None and error["code"] == "internal_error" and "RuntimeError" in error["message"]


def test_invalid_stored_input_fails_with_field(runtime: WorkerRuntime) -> None:
    job_id = _insert(runtime, "sentiment", input_={"txt": "typo"})
    assert execute(job_id, TaskName.SENTIMENT, runtime) is JobStatus.FAILED
    error = _load(runtime, job_id).error
    assert error is not None and error["code"] == "invalid_input" and "text" in error["message"]


def test_redelivered_message_does_not_run_twice(runtime: WorkerRuntime) -> None:
    job_id = _insert(runtime, "generate", input_={"prompt": "once"})
    assert execute(job_id, TaskName.GENERATE, runtime) is JobStatus.SUCCEEDED
    first = _load(runtime, job_id)
    calls = len(runtime.generation.requests)  # type: ignore[union-attr]
    assert execute(job_id, TaskName.GENERATE, runtime) is None
    assert len(runtime.generation.requests) == calls  # type: ignore[union-attr]
    again = _load(runtime, job_id)
    assert again.finished_at == first.finished_at and again.attempts == 1


def test_canceled_job_is_skipped(runtime: WorkerRuntime) -> None:
    job_id = _insert(runtime, "sentiment")
    with session_scope(runtime.settings.database_url) as session:
        assert repository.finish(
            session, job_id, JobStatus.CANCELED, error=repository.CANCELED_ERROR, expected=JobStatus.QUEUED
        )
    assert execute(job_id, TaskName.SENTIMENT, runtime) is None
    assert _load(runtime, job_id).status == "canceled"


def test_concurrent_claims_run_a_job_once(runtime: WorkerRuntime) -> None:
    job_id = _insert(runtime, "generate", input_={"prompt": "race"})
    outcomes: list[JobStatus | None] = []
    barrier = threading.Barrier(6)

    def worker() -> None:
        barrier.wait()
        outcomes.append(execute(job_id, TaskName.GENERATE, runtime))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count(JobStatus.SUCCEEDED) == 1
    assert outcomes.count(None) == 5
    assert len([r for r in runtime.generation.requests if r.request_id == job_id]) == 1  # type: ignore[union-attr]


def test_terminal_state_is_published(runtime: WorkerRuntime) -> None:
    job_id = _insert(runtime, "sentiment")
    pubsub = runtime.redis.pubsub()
    pubsub.subscribe(job_events_channel(job_id))
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"  # type: ignore[index]
    execute(job_id, TaskName.SENTIMENT, runtime)
    message = pubsub.get_message(timeout=5)
    assert message is not None
    assert json.loads(message["data"]) == {"job_id": job_id, "status": "succeeded"}
    pubsub.close()


def test_finish_is_first_wins(runtime: WorkerRuntime) -> None:
    job_id = _insert(runtime, "sentiment")
    url = runtime.settings.database_url
    with session_scope(url) as session:
        assert repository.claim(session, job_id, "w1")
    with session_scope(url) as session:
        assert repository.finish(session, job_id, JobStatus.SUCCEEDED, result={"label": "positive"})
    with session_scope(url) as session:
        assert not repository.finish(session, job_id, JobStatus.FAILED, error={"code": "x", "message": "y"})
    job = _load(runtime, job_id)
    assert job.status == "succeeded" and job.error is None
