"""Bad requests: every one is a 4xx in the ErrorResponse shape naming the field, and leaves no trace."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Broker, MakeClient, Rows
from tests.utils.factories import job_payload

LONG = "x" * 41  # the tests run with TEXTFLEET_MAX_INPUT_CHARS=40

BAD_BODIES: list[tuple[str, Any, str]] = [
    ("unknown task", {"task": "translate", "input": {"text": "hi"}}, "task"),
    ("missing task", {"input": {"text": "hi"}}, "task"),
    ("missing input", {"task": "sentiment"}, "input"),
    ("missing input field", {"task": "sentiment", "input": {}}, "input.text"),
    ("wrong type", {"task": "moderate", "input": {"text": 42}}, "input.text"),
    ("empty text", {"task": "risk", "input": {"text": ""}}, "input.text"),
    ("text too long", {"task": "summarize", "input": {"text": LONG}}, "input.text"),
    ("prompt too long", {"task": "generate", "input": {"prompt": LONG}}, "input.prompt"),
    (
        "messages too long in all",
        {"task": "generate", "input": {"messages": [{"role": "user", "content": "y" * 30}] * 2}},
        "input",
    ),
    (
        "bad message role",
        {"task": "generate", "input": {"messages": [{"role": "robot", "content": "hi"}]}},
        "input.messages.0.role",
    ),
    ("max_tokens over limit", job_payload("generate", params={"max_tokens": 5000}), "params.max_tokens"),
    (
        "summary max_tokens over",
        {"task": "summarize", "input": {"text": "short"}, "params": {"max_tokens": 1025}},
        "params.max_tokens",
    ),
    ("bad stop", job_payload("generate", params={"stop": [1]}), "params.stop.0"),
    ("extra top-level field", job_payload("sentiment", callback="http://x"), "callback"),
    ("extra input field", {"task": "sentiment", "input": {"text": "hi", "lang": "en"}}, "input.lang"),
    (
        "classify params",
        {"task": "risk", "input": {"text": "short"}, "params": {"temperature": 1}},
        "params.temperature",
    ),
    (
        "both prompt and messages",
        {"task": "generate", "input": {"prompt": "a", "messages": [{"role": "user", "content": "b"}]}},
        "input",
    ),
    ("neither prompt nor messages", {"task": "generate", "input": {}}, "input"),
    ("priority too high", job_payload("sentiment", priority=10), "priority"),
    ("priority negative", job_payload("sentiment", priority=-1), "priority"),
    ("priority not a number", job_payload("sentiment", priority="high"), "priority"),
    (
        "too many metadata keys",
        job_payload("sentiment", metadata={f"k{i}": i for i in range(65)}),
        "metadata",
    ),
    ("metadata key too long", job_payload("sentiment", metadata={"k" * 65: 1}), f"metadata.{'k' * 65}[key]"),
    ("body is a list", [job_payload("sentiment")], "body"),
    ("body is a string", "sentiment", "body"),
]


@pytest.fixture
def strict_api(make_client: MakeClient) -> TestClient:
    return make_client(max_input_chars="40")


@pytest.mark.parametrize(
    ("body", "field"), [(b, f) for _, b, f in BAD_BODIES], ids=[n for n, _, _ in BAD_BODIES]
)
def test_bad_job_is_rejected_naming_the_field_and_stores_nothing(
    strict_api: TestClient, rows: Rows, broker: Broker, body: Any, field: str
) -> None:
    response = strict_api.post("/v1/jobs", json=body)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["field"] == field
    assert error["message"].startswith(f"{field}: ")
    assert error["errors"][0]["field"] == field
    assert {"field", "message", "type"} <= set(error["errors"][0])
    for item in error["errors"]:  # the union tag never leaks into a path
        assert not str(item["field"]).startswith(("generate", "summarize", "moderate", "risk", "sentiment"))
    assert rows.count() == 0
    assert broker.messages() == []


def test_unknown_task_lists_the_valid_ones_without_echoing_it(api: TestClient) -> None:
    error = api.post("/v1/jobs", json={"task": "translate", "input": {"text": "hi"}}).json()["error"]
    assert error["field"] == "task"
    assert "translate" not in str(error)  # the rule, not the raw input
    for task in ("generate", "summarize", "moderate", "risk", "sentiment"):
        assert task in error["message"]


def test_validation_message_is_readable(strict_api: TestClient) -> None:
    error = strict_api.post("/v1/jobs", json={"task": "summarize", "input": {"text": LONG}}).json()["error"]
    assert error["message"] == "input.text: text is 41 characters long; the maximum is 40"
    assert error["errors"] == [
        {
            "field": "input.text",
            "message": "text is 41 characters long; the maximum is 40",
            "type": "value_error",
        }
    ]


def test_several_problems_are_all_listed(api: TestClient) -> None:
    body = {"task": "generate", "input": {"prompt": ""}, "priority": 99, "extra": True}
    error = api.post("/v1/jobs", json=body).json()["error"]
    assert {e["field"] for e in error["errors"]} == {"input.prompt", "priority", "extra"}
    assert "(and 2 more)" in error["message"]


@pytest.mark.parametrize("raw", [b'{"task": "sentiment", "input": ', b"not json", b'{"task": }'])
def test_malformed_json_is_400_in_our_shape(api: TestClient, rows: Rows, broker: Broker, raw: bytes) -> None:
    response = api.post("/v1/jobs", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_json"
    assert error["field"] == "body"
    assert rows.count() == 0
    assert broker.messages() == []


def test_missing_body_is_422(api: TestClient) -> None:
    response = api.post("/v1/jobs")
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "body"


def test_unknown_route_is_404_in_our_shape(api: TestClient) -> None:
    response = api.get("/v2/nothing")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "no such route"}}


def test_wrong_method_is_405_in_our_shape(api: TestClient) -> None:
    response = api.delete("/v1/jobs")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert "allow" in response.headers
