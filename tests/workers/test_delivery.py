"""Delivery guarantees in job execution: TTL, run-time limits, retries, cancel and drain (fake engines,
real database and Redis)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shared.constants import TaskName
from shared.db import repository, session_scope
from shared.db.models import Job, utcnow
from shared.schemas import JobStatus
from tests.utils.factories import insert_job, load_job
from workers.control import CancelListener, drain
from workers.execution import execute
from workers.runtime import WorkerRuntime


@pytest.fixture
def runtime_env() -> dict[str, str]:
    return {"max_attempts": "3", "retry_backoff_s": "0.01"}


def _insert(rt: WorkerRuntime, task: str, **fields: object) -> str:
    return insert_job(rt.settings.database_url, task, **fields)


def _load(rt: WorkerRuntime, job_id: str) -> Job:
    return load_job(rt.settings.database_url, job_id)


def _queued_messages(rt: WorkerRuntime, queue: str) -> list[str]:
    ids = []
    for key in rt.redis.scan_iter(match=f"{queue}*"):
        for raw in rt.redis.lrange(key, 0, -1):
            headers = json.loads(raw)["headers"]
            ids.append(headers["id"])
    return ids


def test_job_past_ttl_expires_without_running(runtime: WorkerRuntime) -> None:
    job_id = _insert(
        runtime,
        "generate",
        input_={"prompt": "hi"},
        params={"ttl_s": 5},
        created_at=utcnow() - timedelta(seconds=10),
    )
    assert execute(job_id, TaskName.GENERATE, runtime) is JobStatus.EXPIRED
    job = _load(runtime, job_id)
    assert job.status == "expired" and job.error["code"] == "expired"  # type: ignore[index]
    assert job.started_at is None and job.finished_at is not None
    assert runtime.generation.requests == []  # type: ignore[union-attr]


def test_job_within_ttl_runs(runtime: WorkerRuntime) -> None:
    job_id = _insert(runtime, "generate", input_={"prompt": "hi"}, params={"ttl_s": 60})
    assert execute(job_id, TaskName.GENERATE, runtime) is JobStatus.SUCCEEDED


def test_timeout_is_passed_and_enforced(runtime: WorkerRuntime) -> None:
    ok = _insert(runtime, "generate", input_={"prompt": "hi"}, params={"timeout_s": 7})
    execute(ok, TaskName.GENERATE, runtime)
    default = _insert(runtime, "generate", input_={"prompt": "hi"})
    execute(default, TaskName.GENERATE, runtime)
    assert runtime.generation.timeouts[-2:] == [7, runtime.settings.default_timeout_s]  # type: ignore[union-attr]
    slow = _insert(runtime, "generate", input_={"prompt": "SLOW"}, params={"timeout_s": 1})
    assert execute(slow, TaskName.GENERATE, runtime) is JobStatus.FAILED
    assert _load(runtime, slow).error["code"] == "timeout"  # type: ignore[index]


def test_transient_failure_retries_with_backoff_then_fails(runtime: WorkerRuntime) -> None:
    job_id = _insert(runtime, "generate", input_={"prompt": "BUSY"})
    for attempt in (1, 2):
        assert execute(job_id, TaskName.GENERATE, runtime) is None
        job = _load(runtime, job_id)
        assert job.status == "queued" and job.attempts == attempt and job.worker is None
        assert job.enqueued_at is not None and job.enqueued_at > job.created_at
    assert _queued_messages(runtime, "generate").count(job_id) == 2
    assert execute(job_id, TaskName.GENERATE, runtime) is JobStatus.FAILED
    job = _load(runtime, job_id)
    assert job.attempts == 3
    assert job.error == {"code": "engine_overloaded", "message": "the engine is full"}


def test_permanent_failure_fails_at_once(runtime: WorkerRuntime) -> None:
    job_id = _insert(runtime, "generate", input_={"prompt": "FAIL"})
    assert execute(job_id, TaskName.GENERATE, runtime) is JobStatus.FAILED
    assert _load(runtime, job_id).attempts == 1
    assert _queued_messages(runtime, "generate") == []


def test_cancel_listener_aborts_only_jobs_it_runs(runtime: WorkerRuntime) -> None:
    listener = CancelListener(runtime)
    runtime.in_flight.add("01JOBRUNNINGHERE0000000000")
    assert listener.handle("01JOBRUNNINGHERE0000000000")
    assert not listener.handle("01JOBELSEWHERE000000000000")
    assert runtime.generation.aborted == ["01JOBRUNNINGHERE0000000000"]  # type: ignore[union-attr]


def test_canceled_while_running_keeps_canceled(runtime: WorkerRuntime) -> None:
    job_id = _insert(runtime, "generate", input_={"prompt": "ABORT"})
    claim = runtime.store.claim(job_id, runtime.hostname)
    assert claim is not None
    with session_scope(runtime.settings.database_url) as session:
        assert repository.finish(
            session, job_id, JobStatus.CANCELED, error={"code": "canceled", "message": "x"}
        )
    from shared.lifecycle import Completion

    assert not runtime.store.finish(Completion(job_id, JobStatus.SUCCEEDED, result={"text": ""}))
    assert _load(runtime, job_id).status == "canceled"


def test_drain_gives_aborted_jobs_back_to_the_queue(runtime: WorkerRuntime) -> None:
    runtime.draining.set()
    job_id = _insert(runtime, "generate", input_={"prompt": "ABORT"})
    assert execute(job_id, TaskName.GENERATE, runtime) is None
    job = _load(runtime, job_id)
    assert job.status == "queued" and job.result is None
    assert _queued_messages(runtime, "generate") == [job_id]


def test_drain_waits_then_aborts(runtime: WorkerRuntime) -> None:
    runtime.in_flight.update({"01AAAAAAAAAAAAAAAAAAAAAAAA", "01BBBBBBBBBBBBBBBBBBBBBBBB"})
    assert drain(runtime, 0.3, poll_s=0.05) == 2
    assert runtime.draining.is_set()
    assert sorted(runtime.generation.aborted) == sorted(runtime.in_flight)  # type: ignore[union-attr]
    runtime.in_flight.clear()
    assert drain(runtime, 5, poll_s=0.05) == 0
