"""The worker's dispatch: handlers resolved from the task registry, typed, and a throwaway task run end to end
through `workers.execution.execute` on a real database and Redis."""

from __future__ import annotations

import functools

import pytest

from shared import events
from shared.schemas import JobStatus, parse_job_payload
from shared.tasks import TASKS, Engine, Queue, TaskSpec
from tests.utils.echo_task import ECHO, registry_with_echo, task_names
from tests.utils.factories import insert_job, load_job
from workers import execution
from workers.handlers import HANDLERS, Handlers
from workers.runtime import WorkerRuntime


def test_handlers_are_imported_on_first_use() -> None:
    handlers = Handlers(TASKS)
    assert handlers._resolved == {}
    assert handlers["risk"] is handlers["risk"] is HANDLERS["risk"]
    assert set(handlers._resolved) == {"risk"}
    with pytest.raises(KeyError):
        handlers["nope"]


def test_a_handler_typed_with_other_models_is_refused() -> None:
    wrong = TaskSpec(
        name="wrong",
        queue=Queue.GENERATE,
        engine=Engine.VLLM,
        input="shared.schemas:GenerateInput",  # the echo handler takes a TextInput
        params="shared.schemas:ClassifyParams",
        result="tests.utils.echo_task:EchoResult",
        handler="tests.utils.echo_task:echo",
    )
    with pytest.raises(TypeError, match="input_: GenerateInput"):
        Handlers(TASKS.with_tasks(wrong))["wrong"]


def test_a_throwaway_task_runs_through_the_worker(
    runtime: WorkerRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = registry_with_echo()
    names = task_names(registry)
    # What appending ECHO to shared.tasks.TASKS does at import time, for this test only.
    monkeypatch.setattr(execution, "HANDLERS", Handlers(registry))
    parse = functools.partial(parse_job_payload, registry=registry)
    monkeypatch.setattr(execution, "parse_job_payload", parse)
    monkeypatch.setattr(events, "TaskName", names)
    monkeypatch.setattr(events, "TASK_QUEUES", registry.queues())
    job_id = insert_job(runtime.settings.database_url, ECHO.name, input_={"text": "hello"}, params={})
    assert execution.execute(job_id, names("echo"), runtime) is JobStatus.SUCCEEDED
    job = load_job(runtime.settings.database_url, job_id)
    assert job.status == "succeeded" and job.result == {"echo": "hello"}
    bad = insert_job(runtime.settings.database_url, ECHO.name, input_={"txt": "hello"}, params={})
    assert execution.execute(bad, names("echo"), runtime) is JobStatus.FAILED
    assert load_job(runtime.settings.database_url, bad).error["code"] == "invalid_input"  # type: ignore[index]
