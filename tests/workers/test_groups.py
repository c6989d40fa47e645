"""`workers.groups.run_message`: a message's group of jobs, each keeping its own states (real database)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event

from shared.constants import TaskName
from shared.db import repository, session_scope
from shared.db.models import utcnow
from shared.db.session import get_engine
from shared.schemas import JobStatus
from tests.utils.factories import insert_job, load_job
from tests.utils.fakes import FakeClassifiers
from workers.groups import attach_runner, run_message
from workers.runtime import WorkerRuntime


def test_each_job_of_a_group_ends_in_its_own_state(runtime: WorkerRuntime) -> None:
    url = runtime.settings.database_url
    fine = [insert_job(url, "moderate") for _ in range(5)]
    canceled = insert_job(url, "moderate")
    with session_scope(url) as session:
        repository.finish(
            session, canceled, JobStatus.CANCELED, error=repository.CANCELED_ERROR, expected=JobStatus.QUEUED
        )
    late = insert_job(url, "moderate", params={"ttl_s": 1}, created_at=utcnow() - timedelta(seconds=10))
    crash = insert_job(url, "moderate", input_={"text": "CRASH"})
    runtime.classifiers = FakeClassifiers(fail_on="CRASH")

    outcome = run_message([*fine, canceled, late, crash, fine[0]], TaskName.MODERATE, runtime)

    assert outcome.left == []
    assert outcome.statuses == {
        **dict.fromkeys(fine, JobStatus.SUCCEEDED),
        canceled: None,
        late: JobStatus.EXPIRED,
        crash: JobStatus.FAILED,
    }
    rows = {job_id: load_job(url, job_id) for job_id in outcome.statuses}
    assert {job_id: row.status for job_id, row in rows.items()} == {
        **dict.fromkeys(fine, "succeeded"),
        canceled: "canceled",
        late: "expired",
        crash: "failed",
    }
    assert all(rows[job_id].attempts == 1 and rows[job_id].worker == "test-worker" for job_id in fine)
    assert rows[crash].error["code"] == "model_error"  # type: ignore[index]
    assert run_message(fine, TaskName.MODERATE, runtime).statuses == dict.fromkeys(fine)  # redelivered: no-op


def test_a_group_is_claimed_in_one_statement(runtime: WorkerRuntime) -> None:
    url = runtime.settings.database_url
    jobs = [insert_job(url, "sentiment") for _ in range(12)]
    attach_runner(runtime, 16)
    claims: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE") and "attempts=" in statement:  # a claim
            claims.append(statement)

    engine = get_engine(url)
    event.listen(engine, "before_cursor_execute", count)
    try:
        outcome = run_message(jobs, TaskName.SENTIMENT, runtime)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert outcome.statuses == dict.fromkeys(jobs, JobStatus.SUCCEEDED)
    assert len(claims) == 1


def test_a_draining_worker_leaves_the_group_queued(runtime: WorkerRuntime) -> None:
    url = runtime.settings.database_url
    jobs = [insert_job(url, "risk") for _ in range(3)]
    runtime.draining.set()
    outcome = run_message(jobs, TaskName.RISK, runtime)
    assert outcome.left == jobs and outcome.statuses == {}
    assert [load_job(url, job_id).status for job_id in jobs] == ["queued"] * 3


@pytest.mark.parametrize("size", [1, 3])
def test_a_worker_holds_its_concurrency_whatever_the_messages(runtime: WorkerRuntime, size: int) -> None:
    url = runtime.settings.database_url
    runner = attach_runner(runtime, size)
    jobs = [insert_job(url, "sentiment") for _ in range(7)]
    assert run_message(jobs, TaskName.SENTIMENT, runtime).statuses == dict.fromkeys(jobs, JobStatus.SUCCEEDED)
    assert runner.capacity == size and runner.running == 0
