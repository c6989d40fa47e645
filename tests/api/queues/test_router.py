"""`GET /v1/queues` and `GET /v1/queues/{queue}` against real Redis and real databases."""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from fastapi.testclient import TestClient

from shared.constants import Queue, TaskName, outstanding_key
from shared.events import announce_terminal
from shared.webhooks.queue import enqueue, pull
from tests.api.conftest import Broker
from tests.utils.factories import job_payload

ZERO = {"waiting": 0, "in_flight": 0, "outstanding": 0}


def depth(queue: str, waiting: int, in_flight: int, outstanding: int) -> dict[str, Any]:
    return {"queue": queue, "waiting": waiting, "in_flight": in_flight, "outstanding": outstanding}


def _depth(api: TestClient, queue: str) -> dict[str, Any]:
    response = api.get(f"/v1/queues/{queue}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_empty_queues(api: TestClient) -> None:
    response = api.get("/v1/queues")
    assert response.status_code == 200
    assert response.json() == {"queues": {q.value: {"queue": q.value, **ZERO, "workers": []} for q in Queue}}
    for queue in Queue:
        assert _depth(api, queue.value) == {"queue": queue.value, **ZERO}


def test_unknown_queue_is_404_in_our_shape(api: TestClient) -> None:
    response = api.get("/v1/queues/nope")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "queue_not_found" and error["field"] == "queue"
    assert "generate" in error["message"]


def test_counts_follow_enqueued_jobs_on_every_priority_list(
    api: TestClient, broker: Broker, redis_url: str
) -> None:
    # one generate job per priority 0..9: lands on `generate` and `generate:1`..`generate:9`
    jobs = [job_payload("generate", priority=p) for p in range(10)]
    jobs += [job_payload("sentiment", priority=5), job_payload("moderate", priority=9)]
    response = api.post("/v1/jobs/batch", json={"jobs": jobs})
    assert response.status_code == 202, response.text
    ids = [job["id"] for job in response.json()["items"]]
    single = api.post("/v1/jobs", json=job_payload("risk", priority=0))
    assert single.status_code == 202

    lists = {key for key, _ in broker.messages()}
    assert {"generate", *(f"generate:{n}" for n in range(1, 10))} <= lists  # every priority list used
    assert _depth(api, "generate") == depth("generate", 10, 0, 10)
    assert _depth(api, "classify") == depth("classify", 3, 0, 3)
    assert _depth(api, "webhooks") == {"queue": "webhooks", **ZERO}

    client = redis.Redis.from_url(redis_url)
    try:
        # a worker takes two generate messages off the lists: they are in flight, still outstanding
        client.lpop("generate")
        client.lpop("generate:9")
        assert _depth(api, "generate") == {
            "queue": "generate",
            "waiting": 8,
            "in_flight": 2,
            "outstanding": 10,
        }
        # three jobs reach a terminal state (e.g. canceled while waiting): they leave the set
        for job_id in ids[:3]:
            announce_terminal(client, job_id, TaskName.GENERATE, "succeeded")
        assert client.zcard(outstanding_key(Queue.GENERATE)) == 7
        # the set (7) is below what waits (8): outstanding never drops below waiting
        assert _depth(api, "generate") == {
            "queue": "generate",
            "waiting": 8,
            "in_flight": 0,
            "outstanding": 8,
        }
        for job_id in ids[3:10]:
            announce_terminal(client, job_id, TaskName.GENERATE, "succeeded")
        client.delete("generate", *(f"generate:{n}" for n in range(1, 10)))
        assert _depth(api, "generate") == {"queue": "generate", **ZERO}
        assert _depth(api, "classify")["outstanding"] == 3
    finally:
        client.close()


def test_webhooks_queue_counts_due_and_leased_deliveries(api: TestClient, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        now = time.time()
        enqueue(client, ["msg_a", "msg_b", "msg_c"], at=now - 1)  # due now
        enqueue(client, ["msg_later"], at=now + 3600)  # a retry in an hour: not work yet
        assert pull(client, limit=1, lease_s=60) != []  # one leased by a worker
        assert _depth(api, "webhooks") == {
            "queue": "webhooks",
            "waiting": 2,
            "in_flight": 1,
            "outstanding": 3,
        }
    finally:
        client.close()


def test_workers_come_from_heartbeats(api: TestClient, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        beat = {"hostname": "generate@h-1", "pid": 1, "queues": ["generate"], "running": 2, "http_port": 9101}
        client.set("textfleet:worker:generate:generate@h-1", json.dumps(beat), px=30_000)
        old = {"hostname": "classify@h-2", "pid": 2, "queues": ["classify"], "running": 0}  # no side port
        client.set("textfleet:worker:classify:classify@h-2", json.dumps(old), px=30_000)
        queues = api.get("/v1/queues").json()["queues"]
    finally:
        client.close()
    assert queues["generate"]["workers"] == [{"hostname": "generate@h-1", "running": 2, "http_port": 9101}]
    assert queues["classify"]["workers"] == [{"hostname": "classify@h-2", "running": 0, "http_port": None}]
    assert queues["webhooks"]["workers"] == []


def test_contract_is_documented_in_openapi(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    description = spec["paths"]["/v1/queues/{queue}"]["get"]["description"]
    for phrase in ("LLEN", "ZCARD textfleet:outstanding:", "max(", "outstanding` - `waiting"):
        assert phrase in description
