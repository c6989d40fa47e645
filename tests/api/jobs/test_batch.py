"""`POST /v1/jobs/batch` against real Redis and real databases (PostgreSQL and SQLite)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shared.constants import TASK_QUEUES, TaskName, celery_task_name
from tests.api.conftest import Broker, MakeClient, Rows
from tests.utils.factories import job_payload

ALL_TASKS = [t.value for t in TaskName]


def _queue_key(task: str, priority: int) -> str:
    queue = TASK_QUEUES[TaskName(task)].value
    celery_priority = 9 - priority
    return queue if celery_priority == 0 else f"{queue}:{celery_priority}"


def _jobs(n: int) -> list[dict[str, Any]]:
    return [job_payload(ALL_TASKS[i % len(ALL_TASKS)], priority=i % 10, metadata={"i": i}) for i in range(n)]


def test_batch_stores_and_enqueues_in_order(api: TestClient, broker: Broker, rows: Rows) -> None:
    jobs = _jobs(1000)
    response = api.post("/v1/jobs/batch", json={"jobs": jobs})

    assert response.status_code == 202, response.text[:500]
    body = response.json()
    assert body["object"] == "list"
    items = body["items"]
    assert len(items) == 1000
    assert len({item["id"] for item in items}) == 1000
    for given, item in zip(jobs, items, strict=True):  # request order
        assert item["task"] == given["task"]
        assert item["metadata"] == given["metadata"]
        assert item["priority"] == given["priority"]
        assert item["status"] == "queued"
        assert item["input"] == given["input"]
    assert rows.count() == 1000
    first = rows.get(items[0]["id"])
    assert first is not None
    assert first.status == "queued"
    assert first.meta == {"i": 0}

    queued = broker.jobs()
    assert len(queued) == 1000
    for item in items:
        assert queued[item["id"]] == (
            _queue_key(item["task"], item["priority"]),
            celery_task_name(item["task"]),
        )


def test_batch_of_one_is_like_a_single_post(api: TestClient, broker: Broker) -> None:
    response = api.post("/v1/jobs/batch", json={"jobs": [job_payload("generate", params={"max_tokens": 3})]})
    assert response.status_code == 202, response.text
    (item,) = response.json()["items"]
    assert item["params"] == {"max_tokens": 3}
    assert broker.jobs() == {item["id"]: ("generate:4", "textfleet.generate")}


def test_one_bad_item_rejects_the_whole_batch(api: TestClient, broker: Broker, rows: Rows) -> None:
    jobs = _jobs(50)
    jobs[37] = {"task": "sentiment", "input": {"text": ""}}
    response = api.post("/v1/jobs/batch", json={"jobs": jobs})

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["field"] == "jobs.37.input.text"
    assert error["message"].startswith("jobs.37.input.text: ")
    assert rows.count() == 0
    assert broker.messages() == []


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"task": "translate", "input": {"text": "hi"}}, "jobs.2.task"),
        ({"input": {"text": "hi"}}, "jobs.2.task"),
        ({"task": "generate", "input": {"prompt": "hi"}, "params": {"stop": [1]}}, "jobs.2.params.stop.0"),
        ({"task": "risk", "input": {"text": "hi"}, "priority": 10}, "jobs.2.priority"),
        ({"task": "risk", "input": {"text": "hi"}, "extra": 1}, "jobs.2.extra"),
        ("not an object", "jobs.2"),
    ],
)
def test_item_errors_name_the_index(api: TestClient, rows: Rows, item: Any, field: str) -> None:
    jobs: list[Any] = _jobs(5)
    jobs[2] = item
    response = api.post("/v1/jobs/batch", json={"jobs": jobs})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == field
    assert all(e["field"].startswith("jobs.2") for e in error["errors"])
    assert rows.count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"jobs": []}, "jobs"),
        ({}, "jobs"),
        ({"jobs": "many"}, "jobs"),
        ({"jobs": [job_payload()], "callback": "x"}, "callback"),
        ([job_payload()], "body"),
    ],
)
def test_bad_batch_shape_is_422(api: TestClient, rows: Rows, body: Any, field: str) -> None:
    response = api.post("/v1/jobs/batch", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert rows.count() == 0


def test_over_the_limit_is_422_and_stores_nothing(
    make_client: MakeClient, broker: Broker, rows: Rows
) -> None:
    api = make_client(bulk_max_jobs="10")
    response = api.post("/v1/jobs/batch", json={"jobs": _jobs(11)})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "jobs"
    assert "at most 10 jobs" in error["message"]
    assert rows.count() == 0
    assert broker.messages() == []
    assert api.post("/v1/jobs/batch", json={"jobs": _jobs(10)}).status_code == 202


def test_invalid_json_is_400(api: TestClient) -> None:
    response = api.post("/v1/jobs/batch", content=b'{"jobs": [', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_small_chunks_store_everything(make_client: MakeClient, broker: Broker, rows: Rows) -> None:
    api = make_client(bulk_chunk_size="7")
    response = api.post("/v1/jobs/batch", json={"jobs": _jobs(30)})
    assert response.status_code == 202, response.text
    assert rows.count() == 30
    assert len(broker.jobs()) == 30


def test_enqueue_failure_is_503_and_leaves_no_rows(make_client: MakeClient, rows: Rows) -> None:
    api = make_client(redis_url="redis://127.0.0.1:1/0")  # nothing listens there
    response = api.post("/v1/jobs/batch", json={"jobs": _jobs(20)})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "queue_unavailable"
    assert response.headers["retry-after"]
    assert rows.count() == 0


def test_batch_is_in_the_openapi_schema(api: TestClient) -> None:
    operation = api.get("/openapi.json").json()["paths"]["/v1/jobs/batch"]["post"]
    assert "All or nothing" in operation["description"]
    assert "202" in operation["responses"]


def test_concurrent_single_posts_are_each_stored_and_enqueued(
    api: TestClient, broker: Broker, rows: Rows
) -> None:
    # Concurrent POST /v1/jobs share flushes (IntakeBatcher); each still gets its own job.
    payloads = _jobs(60)
    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(lambda p: api.post("/v1/jobs", json=p), payloads))
    assert [r.status_code for r in responses] == [202] * 60
    bodies = [r.json() for r in responses]
    assert [b["metadata"] for b in bodies] == [p["metadata"] for p in payloads]
    assert all(r.headers["location"] == f"/v1/jobs/{b['id']}" for r, b in zip(responses, bodies, strict=True))
    assert rows.count() == 60
    queued = broker.jobs()
    assert {b["id"]: queued[b["id"]][0] for b in bodies} == {
        b["id"]: _queue_key(b["task"], b["priority"]) for b in bodies
    }
