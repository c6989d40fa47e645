"""Probes and the app's own pages."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import MakeClient


def test_healthz(api: TestClient) -> None:
    response = api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_when_everything_answers(api: TestClient) -> None:
    response = api.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_readyz_names_redis_when_it_is_down(make_client: MakeClient) -> None:
    api = make_client(redis_url="redis://127.0.0.1:1/0")
    response = api.get("/readyz")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "not_ready"
    assert [e["field"] for e in error["errors"]] == ["redis"]
    assert api.get("/healthz").status_code == 200  # alive, just not ready


def test_readyz_names_the_database_when_it_is_down(make_client: MakeClient) -> None:
    api = make_client(database_url="postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    response = api.get("/readyz")
    assert response.status_code == 503
    assert [e["field"] for e in response.json()["error"]["errors"]] == ["database"]


def test_docs_and_openapi(api: TestClient) -> None:
    assert api.get("/docs").status_code == 200
    spec = api.get("/openapi.json").json()
    assert spec["info"]["title"] == "textfleet"
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/cancel", "/healthz", "/readyz"} <= set(
        spec["paths"]
    )
    # the error shape of every documented failure is ours, not FastAPI's default
    responses = spec["paths"]["/v1/jobs"]["post"]["responses"]
    assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
