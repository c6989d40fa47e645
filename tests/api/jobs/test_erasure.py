"""`DELETE /v1/jobs/{id}`: erase one job's data on request (real Redis and databases).

A finished job is erased at once, a queued or running one is canceled then erased, erasing twice
answers the same, and another tenant's job is a 404 exactly like a job that does not exist."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from shared.constants import CANCEL_CHANNEL
from shared.db import repository, session_scope
from shared.schemas import JobStatus
from shared.tenancy.principal import Scope
from tests.api.conftest import MakeClient, Rows
from tests.utils.factories import job_payload, job_row
from tests.utils.tenancy import auth_headers, make_key

MARKER = "MRK" + secrets.token_hex(8)
ERASED = {"input": {}, "params": {}, "metadata": {}, "result": None}


def _finished(rows: Rows, status: str = "succeeded", **values: Any) -> str:
    job = job_row("generate", input_={"prompt": MARKER}, params={"max_tokens": 5}, metadata={"k": MARKER})
    job.status = status
    job.result = {"text": MARKER}
    job.prompt_tokens, job.completion_tokens = 3, 5
    for name, value in values.items():
        setattr(job, name, value)
    rows.add(job)
    return job.id


def test_a_finished_job_is_erased_and_reads_show_it_erased(api: TestClient, rows: Rows) -> None:
    job_id = _finished(rows, "failed", error={"code": "invalid_output", "message": MARKER})
    response = api.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: body[k] for k in ERASED} == ERASED
    assert body["error"] == {"code": "invalid_output", "message": repository.ERASED_MESSAGE}
    assert body["status"] == "failed" and body["task"] == "generate"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 5}  # the accounting stays
    assert body["erased_at"] is not None
    for read in (api.get(f"/v1/jobs/{job_id}"), api.get(f"/v1/jobs/{job_id}", params={"wait": 1})):
        assert read.status_code == 200 and read.json() == body
    listed = [item for item in api.get("/v1/jobs").json()["items"] if item["id"] == job_id]
    assert listed == [body]
    assert MARKER not in api.get(f"/v1/jobs/{job_id}").text

    again = api.delete(f"/v1/jobs/{job_id.lower()}")  # idempotent: same answer, erased_at unchanged
    assert again.status_code == 200 and again.json() == body


def test_a_queued_job_is_canceled_then_erased(api: TestClient, rows: Rows) -> None:
    job_id = api.post("/v1/jobs", json=job_payload("sentiment", metadata={"k": MARKER})).json()["id"]
    response = api.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "canceled"
    assert response.json()["erased_at"] is not None
    row = rows.get(job_id)
    assert row is not None and row.status == "canceled" and row.meta == {} and row.input == {}


def test_a_running_job_is_aborted_in_its_worker_then_erased(
    api: TestClient, rows: Rows, redis_url: str, database_url: str
) -> None:
    job = job_row("generate", input_={"prompt": MARKER})
    job.status = "running"
    job.worker = "generate@host"
    rows.add(job)
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CANCEL_CHANNEL)
    pubsub.get_message(timeout=1)
    try:
        response = api.delete(f"/v1/jobs/{job.id}")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "canceled"
        message = pubsub.get_message(timeout=5)
        assert message is not None and message["data"] == job.id.encode()
    finally:
        pubsub.close()
        client.close()
    with session_scope(database_url) as session:  # the worker's late result is refused
        late = repository.finish(
            session, job.id, JobStatus.SUCCEEDED, result={"text": MARKER}, worker=job.worker
        )
    assert late is None
    row = rows.get(job.id)
    assert row is not None and row.status == "canceled" and row.result is None and row.input == {}
    assert row.erased_at is not None


@pytest.mark.parametrize("job_id", ["01ARZ3NDEKTSV4RRFFQ69G5FAV", "not-a-ulid"])
def test_erasing_a_job_that_does_not_exist_is_404(api: TestClient, job_id: str) -> None:
    response = api.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"


def test_another_tenants_job_is_404_exactly_like_a_missing_one(
    make_client: MakeClient, rows: Rows, database_url: str
) -> None:
    api = make_client(auth_enabled="true")
    owner = auth_headers(make_key(database_url, "acme"))
    stranger = auth_headers(make_key(database_url, "beta"))
    job = job_row("sentiment")
    job.tenant_id = "acme"
    rows.add(job)
    job_id = job.id
    missing_id = repository.new_job_id()

    theirs = api.delete(f"/v1/jobs/{job_id}", headers=stranger)
    missing = api.delete(f"/v1/jobs/{missing_id}", headers=stranger)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()
    same = {k: v for k, v in theirs.headers.items() if k != "date"}
    assert same == {k: v for k, v in missing.headers.items() if k != "date"}
    row = rows.get(job_id)
    assert row is not None and row.status == "queued" and row.erased_at is None  # untouched

    assert api.delete(f"/v1/jobs/{job_id}").status_code == 401  # no key
    reader = auth_headers(make_key(database_url, "acme", scopes=[Scope.JOBS_READ]))
    assert api.delete(f"/v1/jobs/{job_id}", headers=reader).status_code == 403
    admin = auth_headers(make_key(database_url, "ops", scopes=[Scope.ADMIN]))
    assert api.delete(f"/v1/jobs/{job_id}", headers=admin).json()["erased_at"] is not None
    assert api.delete(f"/v1/jobs/{job_id}", headers=owner).status_code == 200
