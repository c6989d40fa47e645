"""Structured output over real HTTP: `extract` jobs and `response_format`, checked at submission."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from shared.constants import celery_task_name
from tests.api.conftest import Broker, Rows

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
    },
    "required": ["name"],
}


def _extract(schema: Any = None, **params: Any) -> dict[str, Any]:
    if schema is not None:
        params["schema"] = schema
    return {"task": "extract", "input": {"text": "Ada Lovelace, 36, lived in London."}, "params": params}


def _generate(response_format: Any) -> dict[str, Any]:
    return {
        "task": "generate",
        "input": {"prompt": "Answer:"},
        "params": {"response_format": response_format},
    }


GOOD: list[tuple[str, dict[str, Any]]] = [
    ("extract with the default schema", _extract()),
    (
        "extract with a schema and instructions",
        _extract(SCHEMA, instructions="Only the person.", max_tokens=64),
    ),
    ("json_object", _generate({"type": "json_object"})),
    ("json_schema", _generate({"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}})),
    ("regex", _generate({"type": "regex", "regex": "[A-Z]{3}-[0-9]{4}"})),
    ("choice", _generate({"type": "choice", "choice": ["yes", "no"]})),
]

BAD: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "extract schema not JSON Schema",
        _extract({"type": "objec"}),
        "params.schema",
        "not a valid JSON Schema",
    ),
    (
        "extract schema with if/then",
        _extract({"if": {}, "then": {}}),
        "params.schema",
        "unsupported keyword `if`",
    ),
    (
        "extract schema with a remote $ref",
        _extract({"properties": {"a": {"$ref": "https://example.com/a.json"}}}),
        "params.schema",
        "not local",
    ),
    ("extract schema not an object", _extract(["type"]), "params.schema", "dictionary"),
    (
        "extract unknown param",
        _extract(SCHEMA, response_format={"type": "text"}),
        "params.response_format",
        "",
    ),
    (
        "json_schema with oneOf",
        _generate({"type": "json_schema", "json_schema": {"name": "x", "schema": {"oneOf": [{}, {}]}}}),
        "params.response_format.json_schema.schema",
        "use `anyOf`",
    ),
    (
        "json_schema without a name",
        _generate({"type": "json_schema", "json_schema": {"schema": SCHEMA}}),
        "params.response_format.json_schema.name",
        "",
    ),
    (
        "regex with a lookahead",
        _generate({"type": "regex", "regex": "(?!a)b"}),
        "params.response_format.regex",
        "",
    ),
    ("regex not compilable", _generate({"type": "regex", "regex": "(a"}), "params.response_format.regex", ""),
    ("empty choice", _generate({"type": "choice", "choice": []}), "params.response_format.choice", ""),
    ("type without its field", _generate({"type": "regex"}), "params.response_format", "needs the `regex`"),
    ("unknown type", _generate({"type": "yaml"}), "params.response_format.type", ""),
    (
        "min_tokens with a constraint",
        {
            **_generate({"type": "choice", "choice": ["a", "b"]}),
            "params": {"min_tokens": 5, "response_format": {"type": "choice", "choice": ["a", "b"]}},
        },
        "params",
        "min_tokens cannot be combined",
    ),
]


@pytest.mark.parametrize("body", [b for _, b in GOOD], ids=[n for n, _ in GOOD])
def test_structured_jobs_are_accepted_and_stored_as_given(
    api: TestClient, rows: Rows, broker: Broker, body: dict[str, Any]
) -> None:
    response = api.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["task"] == body["task"]
    assert job["params"] == body["params"]  # `schema`, not the Python attribute name
    row = rows.get(job["id"])
    assert row is not None and row.params == body["params"]
    key, name = broker.jobs()[job["id"]]
    assert key.split(":")[0] == "generate" and name == celery_task_name(body["task"])


@pytest.mark.parametrize(
    ("body", "field", "problem"), [(b, f, p) for _, b, f, p in BAD], ids=[n for n, _, _, _ in BAD]
)
def test_bad_schemas_are_422_naming_field_and_problem(
    api: TestClient, rows: Rows, broker: Broker, body: dict[str, Any], field: str, problem: str
) -> None:
    response = api.post("/v1/jobs", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["field"] == field
    assert problem in error["message"], error["message"]
    assert rows.count() == 0
    assert broker.messages() == []


def test_a_bad_schema_in_a_batch_names_its_index_and_stores_nothing(
    api: TestClient, rows: Rows, broker: Broker
) -> None:
    jobs = [_extract(SCHEMA) for _ in range(5)]
    jobs[3] = _extract({"type": "array", "uniqueItems": True})
    response = api.post("/v1/jobs/batch", json={"jobs": jobs})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "jobs.3.params.schema"
    assert "`uniqueItems`" in error["message"]
    assert rows.count() == 0
    assert broker.messages() == []


def test_oversized_schema_is_422(make_client: Any, rows: Rows) -> None:
    api = make_client(max_schema_chars="200")
    schema = {"type": "object", "properties": {f"field_{i}": {"type": "string"} for i in range(20)}}
    error = api.post("/v1/jobs", json=_extract(schema)).json()["error"]
    assert error["field"] == "params.schema"
    assert "the maximum is 200" in error["message"]
    assert rows.count() == 0


def test_extract_is_in_the_openapi_schema(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert "schema" in schemas["ExtractParams"]["properties"]
    assert "response_format" in schemas["GenerateParams"]["properties"]
