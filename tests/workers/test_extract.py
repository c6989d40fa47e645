"""Constrained-generation jobs (`extract`, `generate` with response_format) through `execute`, on a real
database and Redis with a scripted engine: what reaches the engine, and the worker's own output check."""

from __future__ import annotations

import json

import pytest

from shared.constants import TaskName
from shared.constraints import OutputConstraint
from shared.schemas import JobStatus
from shared.structured import default_extract_schema, schema_json
from tests.utils.factories import insert_job, load_job
from tests.utils.fakes import ScriptedEngine
from workers.execution import execute
from workers.runtime import WorkerRuntime

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
}


def _run(rt: WorkerRuntime, engine: ScriptedEngine, task: str, **fields: object) -> str:
    rt.generation = engine
    job_id = insert_job(rt.settings.database_url, task, **fields)
    execute(job_id, TaskName(task), rt)
    return job_id


def test_extract_with_the_default_schema(runtime: WorkerRuntime) -> None:
    data = {"entities": [{"text": "Ada Lovelace", "type": "PERSON"}], "relations": []}
    engine = ScriptedEngine((json.dumps(data), "stop"))
    job_id = _run(runtime, engine, "extract", input_={"text": "Ada Lovelace wrote notes."}, params={})
    job = load_job(runtime.settings.database_url, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    usage = {"prompt_tokens": 7, "completion_tokens": len(json.dumps(data).split())}
    assert job.result == {"data": data, "usage": usage}
    assert job.usage == usage
    (request,) = engine.requests
    assert request.constraint == OutputConstraint.json_schema(default_extract_schema())
    assert request.max_tokens == runtime.settings.extract_max_tokens
    assert request.params.temperature == 0.0
    assert request.messages is not None
    system, user = request.messages
    assert schema_json(default_extract_schema()) in system["content"]
    assert "relations" in system["content"] and user == {
        "role": "user",
        "content": "Ada Lovelace wrote notes.",
    }


def test_extract_with_a_schema_and_instructions(runtime: WorkerRuntime) -> None:
    engine = ScriptedEngine(('{"name":"Ada","age":36}', "stop"))
    params = {"schema": SCHEMA, "instructions": "Only the first person.", "max_tokens": 40, "seed": 3}
    job_id = _run(runtime, engine, "extract", params=params)
    job = load_job(runtime.settings.database_url, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result is not None and job.result["data"] == {"name": "Ada", "age": 36}
    (request,) = engine.requests
    assert request.constraint == OutputConstraint.json_schema(SCHEMA)
    assert request.max_tokens == 40 and request.params.seed == 3
    assert request.messages is not None and request.messages[0]["content"].endswith("Only the first person.")


@pytest.mark.parametrize(
    ("text", "finish", "message"),
    [
        (
            '{"name":"Ada","age":-3}',
            "stop",
            "does not match the schema: -3 is less than the minimum of 0 at `/age`",
        ),
        ('{"name":"Ada"', "length", "cut off at max_tokens"),
        ("Ada is 36", "stop", "not valid JSON"),
    ],
)
def test_extract_output_that_does_not_validate_fails_invalid_output(
    runtime: WorkerRuntime, text: str, finish: str, message: str
) -> None:
    engine = ScriptedEngine((text, finish))
    job_id = _run(runtime, engine, "extract", params={"schema": SCHEMA, "max_tokens": 12})
    job = load_job(runtime.settings.database_url, job_id)
    assert job.status == JobStatus.FAILED
    assert job.error is not None and job.error["code"] == "invalid_output"
    assert message in job.error["message"]
    if finish == "length":
        assert "max_tokens=12" in job.error["message"]
    assert job.attempts == 1  # not retried: the same request would fail the same way


@pytest.mark.parametrize(
    ("response_format", "text", "kind"),
    [
        ({"type": "json_object"}, '{"a":1}', "json_object"),
        (
            {"type": "json_schema", "json_schema": {"name": "p", "schema": SCHEMA}},
            '{"name":"x","age":1}',
            "json",
        ),
        ({"type": "regex", "regex": "[A-Z]{3}"}, "ABC", "regex"),
        ({"type": "choice", "choice": ["yes", "no"]}, "yes", "choice"),
    ],
)
def test_generate_with_response_format(
    runtime: WorkerRuntime, response_format: dict[str, object], text: str, kind: str
) -> None:
    engine = ScriptedEngine((text, "stop"))
    params = {"response_format": response_format, "max_tokens": 16}
    job_id = _run(runtime, engine, "generate", params=params)
    job = load_job(runtime.settings.database_url, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result is not None and job.result["text"] == text
    (request,) = engine.requests
    assert request.constraint is not None and request.constraint.kind == kind


def test_generate_without_response_format_is_unconstrained(runtime: WorkerRuntime) -> None:
    engine = ScriptedEngine(("free text", "stop"))
    job_id = _run(runtime, engine, "generate", params={"response_format": {"type": "text"}})
    assert load_job(runtime.settings.database_url, job_id).status == JobStatus.SUCCEEDED
    assert engine.requests[0].constraint is None


def test_generate_choice_outside_the_choices_fails_invalid_output(runtime: WorkerRuntime) -> None:
    engine = ScriptedEngine(("maybe", "stop"))
    params = {"response_format": {"type": "choice", "choice": ["yes", "no"]}}
    job = load_job(runtime.settings.database_url, _run(runtime, engine, "generate", params=params))
    assert job.status == JobStatus.FAILED
    assert job.error == {"code": "invalid_output", "message": "the output is not one of the choices"}
