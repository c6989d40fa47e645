"""Idempotency-Key on single and bulk submission, and webhook fields at intake."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import Broker, MakeClient, Rows
from tests.utils.factories import job_payload

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_same_key_same_body_returns_the_original_job(api: TestClient, rows: Rows, broker: Broker) -> None:
    body = job_payload("sentiment")
    first = api.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-42"})
    assert first.status_code == 202
    again = api.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-42"})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    assert rows.count() == 1
    assert len(broker.messages()) == 1


def test_same_key_other_body_is_409(api: TestClient, rows: Rows, broker: Broker) -> None:
    assert (
        api.post("/v1/jobs", json=job_payload("sentiment"), headers={"Idempotency-Key": "k"}).status_code
        == 202
    )
    other = api.post("/v1/jobs", json=job_payload("risk"), headers={"Idempotency-Key": "k"})
    assert other.status_code == 409
    assert "Idempotency-Key" in other.json()["error"]["message"]
    assert rows.count() == 1
    assert len(broker.messages()) == 1


def test_different_keys_make_different_jobs(api: TestClient, rows: Rows) -> None:
    body = job_payload("sentiment")
    a = api.post("/v1/jobs", json=body, headers={"Idempotency-Key": "a"}).json()
    b = api.post("/v1/jobs", json=body, headers={"Idempotency-Key": "b"}).json()
    assert a["id"] != b["id"] and rows.count() == 2


def test_bulk_with_key(api: TestClient, rows: Rows, broker: Broker) -> None:
    batch = {"jobs": [job_payload("sentiment"), job_payload("moderate")]}
    first = api.post("/v1/jobs/batch", json=batch, headers={"Idempotency-Key": "batch-1"})
    assert first.status_code == 202
    again = api.post("/v1/jobs/batch", json=batch, headers={"Idempotency-Key": "batch-1"})
    assert again.status_code == 200
    assert [j["id"] for j in again.json()["items"]] == [j["id"] for j in first.json()["items"]]
    changed = api.post(
        "/v1/jobs/batch", json={"jobs": batch["jobs"][:1]}, headers={"Idempotency-Key": "batch-1"}
    )
    assert changed.status_code == 409
    assert rows.count() == 2 and len(broker.messages()) == 2


def test_key_too_long_is_422(api: TestClient, rows: Rows) -> None:
    response = api.post("/v1/jobs", json=job_payload(), headers={"Idempotency-Key": "x" * 300})
    assert response.status_code == 422
    assert rows.count() == 0


def test_webhook_needs_the_signing_secret(api: TestClient, rows: Rows, broker: Broker) -> None:
    body = job_payload("sentiment", webhook="https://hooks.example.com/textfleet")
    response = api.post("/v1/jobs", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "webhook"
    assert "TEXTFLEET_WEBHOOK_SECRET" in response.json()["error"]["message"]
    batch = api.post("/v1/jobs/batch", json={"jobs": [job_payload(), body]})
    assert batch.status_code == 422 and batch.json()["error"]["field"] == "jobs.1.webhook"
    assert rows.count() == 0 and broker.messages() == []


def test_webhook_is_stored_and_shown(make_client: MakeClient, rows: Rows) -> None:
    api = make_client(webhook_secret=SECRET)
    body = job_payload(
        "sentiment", webhook="https://hooks.example.com/t", webhook_events=["started", "completed"]
    )
    job = api.post("/v1/jobs", json=body).json()
    assert job["webhook"] == "https://hooks.example.com/t"
    assert job["webhook_events"] == ["completed", "started"]
    row = rows.get(job["id"])
    assert row is not None and row.webhook == "https://hooks.example.com/t"
    shown = api.get(f"/v1/jobs/{job['id']}").json()
    assert shown["webhook_events"] == ["completed", "started"] and shown["webhook_deliveries"] == []


def test_webhook_bad_input(make_client: MakeClient, rows: Rows) -> None:
    api = make_client(webhook_secret=SECRET)
    for extra, field in [
        ({"webhook": "ftp://x.example.com"}, "webhook"),
        ({"webhook": "not a url"}, "webhook"),
        ({"webhook_events": ["completed"]}, "body"),  # a cross-field rule: its message names both
        ({"webhook": "https://h.example.com", "webhook_events": ["finished"]}, "webhook_events.0"),
    ]:
        response = api.post("/v1/jobs", json=job_payload("sentiment", **extra))
        assert response.status_code == 422, extra
        assert (
            response.json()["error"]["field"] in (field, None) or field in response.json()["error"]["message"]
        )
    assert rows.count() == 0
