"""`/v1/jobs` against real Redis (the Celery broker) and real databases (PostgreSQL and SQLite)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from shared.constants import CANCEL_CHANNEL, TASK_QUEUES, TaskName, celery_task_name, job_events_channel
from shared.db import repository
from shared.db.session import session_scope
from shared.events import announce_terminal
from shared.schemas import JobStatus
from tests.api.conftest import Broker, MakeClient, Rows
from tests.utils.factories import job_payload, job_row

ALL_TASKS = [t.value for t in TaskName]


def _queue_key(task: str, priority: int) -> str:
    """Where Celery's Redis transport (priority steps 0..9, sep ':') keeps a message."""
    queue = TASK_QUEUES[TaskName(task)].value
    celery_priority = 9 - priority
    return queue if celery_priority == 0 else f"{queue}:{celery_priority}"


# --- Create --------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ALL_TASKS)
def test_create_stores_and_enqueues(api: TestClient, broker: Broker, rows: Rows, task: str) -> None:
    response = api.post("/v1/jobs", json=job_payload(task, metadata={"ticket": "T-1"}))

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["object"] == "job"
    assert body["task"] == task
    assert body["status"] == "queued"
    assert body["metadata"] == {"ticket": "T-1"}
    assert response.headers["location"] == f"/v1/jobs/{body['id']}"

    row = rows.get(body["id"])
    assert row is not None
    assert row.status == "queued"
    assert row.task == task
    assert row.input == job_payload(task)["input"]

    assert broker.jobs() == {body["id"]: (_queue_key(task, 5), celery_task_name(task))}


@pytest.mark.parametrize(("priority", "key"), [(9, "classify"), (0, "classify:9"), (7, "classify:2")])
def test_priority_picks_the_celery_priority_list(
    api: TestClient, broker: Broker, priority: int, key: str
) -> None:
    response = api.post("/v1/jobs", json=job_payload("moderate", priority=priority))
    assert response.status_code == 202, response.text
    assert broker.jobs()[response.json()["id"]][0] == key


def test_location_uses_public_url(make_client: MakeClient) -> None:
    api = make_client(public_url="https://jobs.example.com/")
    response = api.post("/v1/jobs", json=job_payload("sentiment"))
    assert response.headers["location"] == f"https://jobs.example.com/v1/jobs/{response.json()['id']}"


def test_stores_what_the_client_gave_without_frozen_defaults(api: TestClient, rows: Rows) -> None:
    payload = job_payload(
        "generate",
        input={"messages": [{"role": "user", "content": "Hi"}]},
        params={"max_tokens": 12, "temperature": 0.2, "seed": None},
    )
    response = api.post("/v1/jobs", json=payload)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["params"] == {"max_tokens": 12, "temperature": 0.2}
    assert body["input"] == {"messages": [{"role": "user", "content": "Hi"}]}
    row = rows.get(body["id"])
    assert row is not None
    assert row.params == {"max_tokens": 12, "temperature": 0.2}
    assert row.priority == 5


def test_enqueue_failure_is_503_and_leaves_no_row(make_client: MakeClient, rows: Rows) -> None:
    api = make_client(redis_url="redis://127.0.0.1:1/0")  # nothing listens there
    before = rows.count()

    response = api.post("/v1/jobs", json=job_payload("generate"))

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "queue_unavailable"
    assert response.headers["retry-after"]
    assert rows.count() == before


# --- Get -----------------------------------------------------------------------------------------


def test_get_returns_the_job(api: TestClient) -> None:
    created = api.post("/v1/jobs", json=job_payload("risk")).json()
    response = api.get(f"/v1/jobs/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created


@pytest.mark.parametrize("job_id", ["01ARZ3NDEKTSV4RRFFQ69G5FAV", "not-a-job", "x" * 300, "1"])
def test_unknown_or_malformed_id_is_404(api: TestClient, job_id: str) -> None:
    response = api.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"


def test_lowercase_id_finds_the_job(api: TestClient) -> None:
    created = api.post("/v1/jobs", json=job_payload("risk")).json()
    assert api.get(f"/v1/jobs/{created['id'].lower()}").json()["id"] == created["id"]


# --- List ----------------------------------------------------------------------------------------


def test_list_paginates_newest_first_with_filters(api: TestClient, rows: Rows) -> None:
    sentiment = [job_row("sentiment") for _ in range(5)]
    others = [job_row("generate"), job_row("risk")]
    done = job_row("sentiment")
    done.status = JobStatus.SUCCEEDED.value
    rows.add(*sentiment, *others, done)

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, "task": "sentiment", "status": "queued"}
        if cursor:
            params["cursor"] = cursor
        response = api.get("/v1/jobs", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["object"] == "list"
        pages += 1
        seen += [item["id"] for item in page["items"]]
        assert all(item["task"] == "sentiment" and item["status"] == "queued" for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert seen == sorted((j.id for j in sentiment), reverse=True)

    everything = api.get("/v1/jobs").json()
    assert [i["id"] for i in everything["items"]] == sorted(
        (j.id for j in [*sentiment, *others, done]), reverse=True
    )
    assert everything["next_cursor"] is None
    succeeded = api.get("/v1/jobs", params={"status": "succeeded"}).json()["items"]
    assert [i["id"] for i in succeeded] == [done.id]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "done"}, "status"),
        ({"task": "translate"}, "task"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "???"}, "cursor"),
    ],
)
def test_list_rejects_bad_query(api: TestClient, params: dict[str, Any], field: str) -> None:
    response = api.get("/v1/jobs", params=params)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == field
    assert error["message"].startswith(f"{field}: ")


# --- Cancel --------------------------------------------------------------------------------------


def test_cancel_queued_then_again_is_409(api: TestClient, redis_url: str) -> None:
    job_id = api.post("/v1/jobs", json=job_payload("summarize")).json()["id"]
    listener = redis.Redis.from_url(redis_url).pubsub()
    listener.subscribe(job_events_channel(job_id))
    assert listener.get_message(timeout=2)["type"] == "subscribe"  # type: ignore[index]

    response = api.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "canceled"
    assert response.json()["finished_at"] is not None

    event = listener.get_message(ignore_subscribe_messages=True, timeout=2)
    assert event is not None
    assert json.loads(event["data"]) == {"job_id": job_id, "status": "canceled"}
    listener.close()

    again = api.post(f"/v1/jobs/{job_id}/cancel")
    assert again.status_code == 409
    assert again.json()["error"] == {"code": "conflict", "message": "job is already canceled"}


def test_cancel_running_aborts_it_in_the_worker(api: TestClient, rows: Rows, redis_url: str) -> None:
    job = job_row("generate")
    job.status = "running"
    rows.add(job)
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CANCEL_CHANNEL)
    pubsub.get_message(timeout=1)
    response = api.post(f"/v1/jobs/{job.id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    message = pubsub.get_message(timeout=5)
    assert message is not None and message["data"] == job.id.encode()
    row = rows.get(job.id)
    assert row is not None and row.status == "canceled"
    pubsub.close()
    client.close()


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("succeeded", "job is already succeeded"),
        ("failed", "job is already failed"),
    ],
)
def test_cancel_conflicts(api: TestClient, rows: Rows, status: str, message: str) -> None:
    job = job_row("moderate")
    job.status = status
    rows.add(job)
    response = api.post(f"/v1/jobs/{job.id}/cancel")
    assert response.status_code == 409
    assert response.json()["error"]["message"] == message
    row = rows.get(job.id)
    assert row is not None
    assert row.status == status


def test_cancel_unknown_is_404(api: TestClient) -> None:
    assert api.post("/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/cancel").status_code == 404


# --- Wait ----------------------------------------------------------------------------------------


def _finish_later(database_url: str, redis_url: str, job_id: str, delay_s: float) -> threading.Thread:
    """What a worker does: claim, finish, commit, then publish the event."""

    def work() -> None:
        time.sleep(delay_s)
        with session_scope(database_url) as session:
            assert repository.claim(session, job_id, "test-worker")
        with session_scope(database_url) as session:
            assert repository.finish(session, job_id, JobStatus.SUCCEEDED, result={"label": "positive"})
            job = repository.get(session, job_id)
            assert job is not None
        client = redis.Redis.from_url(redis_url)
        announce_terminal(client, job_id, job.task, JobStatus.SUCCEEDED.value)
        client.close()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_wait_returns_when_the_job_finishes(api: TestClient, database_url: str, redis_url: str) -> None:
    job_id = api.post("/v1/jobs", json=job_payload("sentiment")).json()["id"]
    worker = _finish_later(database_url, redis_url, job_id, delay_s=0.5)

    started = time.monotonic()
    response = api.get(f"/v1/jobs/{job_id}", params={"wait": 10})
    elapsed = time.monotonic() - started
    worker.join(5)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"
    assert response.json()["result"] == {"label": "positive"}
    assert 0.4 < elapsed < 5


def test_wait_returns_at_once_for_a_terminal_job(api: TestClient, rows: Rows) -> None:
    job = job_row("risk")
    job.status = JobStatus.FAILED.value
    rows.add(job)
    started = time.monotonic()
    response = api.get(f"/v1/jobs/{job.id}", params={"wait": 10})
    assert time.monotonic() - started < 2
    assert response.json()["status"] == "failed"


def test_wait_times_out_with_the_current_state(api: TestClient) -> None:
    job_id = api.post("/v1/jobs", json=job_payload("sentiment")).json()["id"]
    started = time.monotonic()
    response = api.get(f"/v1/jobs/{job_id}", params={"wait": 1})
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json()["status"] == "queued"
    assert 0.9 < elapsed < 3


def test_wait_for_unknown_job_is_404(api: TestClient) -> None:
    response = api.get("/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV", params={"wait": 1})
    assert response.status_code == 404


@pytest.mark.parametrize("wait", ["0", "-1", "3", "soon"])
def test_wait_out_of_range_is_422(make_client: MakeClient, wait: str) -> None:
    api = make_client(max_wait_s="2")
    job_id = api.post("/v1/jobs", json=job_payload("sentiment")).json()["id"]
    response = api.get(f"/v1/jobs/{job_id}", params={"wait": wait})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "wait"
