"""Input hardening (issue 12, point 5): a body over the cap is a 413 before it is read, metadata is
bounded in size and depth, request models coerce nothing and know every field, a NUL in a path or query
parameter is a 4xx naming it, a 405 names every method of the path, and the OpenAPI document states the
errors, statuses and limits the API really answers with. Nothing is stored by a refused request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from shared.settings import get_settings
from tests.api.conftest import Broker, MakeClient, Rows
from tests.utils.factories import job_payload

SMALL = {"max_body_bytes": "2048", "max_metadata_bytes": "64", "max_metadata_depth": "3"}


@pytest.fixture
def small(make_client: MakeClient) -> TestClient:
    """An app with a 2 KiB body cap, 64-byte metadata and 3 levels of nesting."""
    return make_client(**SMALL)


def _error(response: Any) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def test_a_body_over_the_cap_is_a_413_naming_the_setting_and_nothing_is_stored(
    small: TestClient, rows: Rows, broker: Broker
) -> None:
    body = job_payload("sentiment", input={"text": "x" * 4000})
    response = small.post("/v1/jobs", json=body)
    assert response.status_code == 413, response.text
    assert _error(response)["code"] == "payload_too_large"
    assert "2048 bytes" in _error(response)["message"] and "max_body_bytes" in _error(response)["message"]
    batch = small.post("/v1/jobs/batch", json={"jobs": [body]})
    assert batch.status_code == 413
    # The OpenAI routes answer in OpenAI's shape.
    chat = small.post(
        "/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "x" * 4000}]}
    )
    assert chat.status_code == 413 and chat.json()["error"]["type"] == "invalid_request_error"
    assert rows.count() == 0 and broker.jobs() == {}


def test_a_chunked_body_is_cut_off_once_it_passes_the_cap(small: TestClient, rows: Rows) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"task": "sentiment", "input": {"text": "'
        for _ in range(100):
            yield b"x" * 100
        yield b'"}}'

    response = small.post("/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert rows.count() == 0


def test_a_body_under_the_cap_is_accepted(small: TestClient) -> None:
    assert small.post("/v1/jobs", json=job_payload("sentiment")).status_code == 202


def test_an_upload_is_capped_by_the_file_size_not_the_body_cap(small: TestClient) -> None:
    data = b'{"custom_id": "a"}\n' * 200  # 3.8 KB: over max_body_bytes, far under files_max_bytes
    response = small.post("/v1/files", files={"file": ("in.jsonl", data)}, data={"purpose": "batch"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"note": "x" * 100}, "bytes as JSON; the maximum is 64"),
        ({"a": {"b": {"c": {"d": 1}}}}, "nests 4 levels deep; the maximum is 3"),
        ({"a": [[[1]]]}, "nests 4 levels deep; the maximum is 3"),
    ],
)
def test_metadata_over_its_caps_is_a_422_on_metadata(
    small: TestClient, rows: Rows, metadata: dict[str, Any], message: str
) -> None:
    response = small.post("/v1/jobs", json=job_payload("sentiment", metadata=metadata))
    assert response.status_code == 422, response.text
    assert _error(response)["field"] == "metadata" and message in _error(response)["message"]
    assert rows.count() == 0


def test_metadata_within_its_caps_is_kept_unchanged(small: TestClient) -> None:
    metadata = {"a": {"b": [1, 2]}, "t": "ok"}
    response = small.post("/v1/jobs", json=job_payload("sentiment", metadata=metadata))
    assert response.status_code == 202, response.text
    assert response.json()["metadata"] == metadata


def test_a_document_nested_far_beyond_any_cap_is_a_clean_4xx(api: TestClient, rows: Rows) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    body = '{"task": "sentiment", "input": {"text": "hi"}, "metadata": {"a": ' + deep + "}}"
    response = api.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code in {400, 422}, response.text
    assert rows.count() == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"priority": False}, "priority"),
        ({"priority": "5"}, "priority"),
        ({"priority": 5.0}, "priority"),
        ({"params": {"max_tokens": "8"}}, "params.max_tokens"),
        ({"params": {"temperature": True}}, "params.temperature"),
        ({"params": {"stream": 1}}, "params.stream"),
        (
            {
                "params": {
                    "response_format": {
                        "type": "json_schema",
                        "json_schema": {"name": "n", "schema": {}, "strict": "yes"},
                    }
                }
            },
            "params.response_format.json_schema.strict",
        ),
        ({"priorty": 5}, "priorty"),
    ],
)
def test_request_models_coerce_nothing_and_refuse_unknown_fields(
    api: TestClient, rows: Rows, change: dict[str, Any], field: str
) -> None:
    response = api.post("/v1/jobs", json={**job_payload("generate"), **change})
    assert response.status_code == 422, response.text
    assert _error(response)["field"] == field, _error(response)
    assert rows.count() == 0


@pytest.mark.parametrize(
    ("path", "field", "status"),
    [
        ("/v1/files?after=a%00b", "after", 400),
        ("/v1/files/file-%00", "file_id", 400),
        ("/v1/batches?after=%00", "after", 400),
        ("/v1/batches/batch_%00", "batch_id", 400),
        ("/v1/jobs?cursor=%00", "cursor", 422),
        ("/v1/queues/%00", "queue", 422),
    ],
)
def test_a_nul_in_a_path_or_query_parameter_is_a_4xx_naming_it(
    api: TestClient, path: str, field: str, status: int
) -> None:
    response = api.get(path)
    assert response.status_code == status, response.text
    error = _error(response)
    assert (error.get("field") or error.get("param")) == field, error


@pytest.mark.parametrize(
    ("path", "allowed"),
    [("/v1/jobs", "GET, POST"), ("/v1/jobs/batch", "POST"), ("/v1/files/file-1", "DELETE, GET")],
)
def test_a_405_names_every_method_of_the_path(api: TestClient, path: str, allowed: str) -> None:
    response = api.request("PATCH", path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert _error(response)["code"] == "method_not_allowed"


def test_the_openapi_document_states_the_real_errors_and_limits(make_client: MakeClient) -> None:
    document = make_client(max_wait_s="7", list_max_limit="50").get("/openapi.json").json()
    paths = document["paths"]
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "OpenAIError" in schemas
    create = paths["/v1/jobs"]["post"]["responses"]
    assert {"200", "202", "400", "413", "422"} <= set(create)
    assert create["413"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert "GetJob" in create["202"]["links"]
    chat = paths["/v1/chat/completions"]["post"]["responses"]
    assert "422" not in chat and chat["400"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/OpenAIError"
    )
    assert "text/event-stream" in chat["200"]["content"]
    wait = next(p for p in paths["/v1/jobs/{job_id}"]["get"]["parameters"] if p["name"] == "wait")
    assert wait["schema"]["anyOf"][0]["maximum"] == 7
    limit = next(p for p in paths["/v1/jobs"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 50
    content = paths["/v1/files/{file_id}/content"]["get"]["responses"]["200"]["content"]
    assert "application/json" not in content
    get_settings.cache_clear()


def test_the_app_module_serves_the_same_document_builder() -> None:
    # `create_app` installs it; an app built twice builds its own (settings differ per app).
    first, second = create_app(), create_app()
    assert first.openapi() is first.openapi() and first.openapi() is not second.openapi()
