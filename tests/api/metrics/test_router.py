"""`GET /metrics` of the API: submissions, HTTP requests and queue depth, on real Redis and databases."""

from __future__ import annotations

import redis
from fastapi.testclient import TestClient

from shared.constants import TaskName
from shared.events import announce_terminal
from tests.api.conftest import MakeClient
from tests.utils.factories import job_payload
from tests.utils.metrics import Samples, parse_metrics, value


def scrape(api: TestClient) -> Samples:
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse_metrics(response.text)


def test_submissions_move_the_counter_and_the_queue_gauges(api: TestClient, redis_url: str) -> None:
    before = scrape(api)
    assert value(before, "textfleet_queue_waiting", queue="generate") == 0
    single = api.post("/v1/jobs", json=job_payload("generate"))
    assert single.status_code == 202
    batch = api.post(
        "/v1/jobs/batch",
        json={"jobs": [job_payload("generate"), job_payload("sentiment"), job_payload("risk")]},
    )
    assert batch.status_code == 202
    rejected = api.post("/v1/jobs", json={"task": "generate", "input": {}})
    assert rejected.status_code == 422

    after = scrape(api)
    for task, n in {"generate": 2, "sentiment": 1, "risk": 1, "moderate": 0, "summarize": 0}.items():
        delta = value(after, "textfleet_jobs_submitted_total", task=task) - value(
            before, "textfleet_jobs_submitted_total", task=task
        )
        assert delta == n, task
    assert value(after, "textfleet_queue_waiting", queue="generate") == 2
    assert value(after, "textfleet_queue_outstanding", queue="generate") == 2
    assert value(after, "textfleet_queue_in_flight", queue="generate") == 0
    assert value(after, "textfleet_queue_waiting", queue="classify") == 2
    assert value(after, "textfleet_queue_outstanding", queue="webhooks") == 0

    client = redis.Redis.from_url(redis_url)
    try:
        client.delete("generate", *(f"generate:{n}" for n in range(1, 10)))  # a worker took them
        now = scrape(api)
        assert value(now, "textfleet_queue_waiting", queue="generate") == 0
        assert value(now, "textfleet_queue_in_flight", queue="generate") == 2
        announce_terminal(client, single.json()["id"], TaskName.GENERATE, "succeeded")
        assert value(scrape(api), "textfleet_queue_outstanding", queue="generate") == 1
    finally:
        client.close()


def test_http_requests_are_labelled_by_route_template(api: TestClient) -> None:
    before = scrape(api)
    job_id = api.post("/v1/jobs", json=job_payload()).json()["id"]
    for _ in range(3):
        assert api.get(f"/v1/jobs/{job_id}").status_code == 200
    assert api.get("/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV").status_code == 404
    assert api.get("/no/such/path").status_code == 404
    after = scrape(api)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/v1/jobs/{job_id}"
    assert delta("textfleet_http_requests_total", method="GET", route=route, status="200") == 3
    assert delta("textfleet_http_requests_total", method="GET", route=route, status="404") == 1
    assert delta("textfleet_http_requests_total", method="POST", route="/v1/jobs", status="202") == 1
    assert delta("textfleet_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert delta("textfleet_http_request_duration_seconds_count", method="GET", route=route) == 4
    assert delta("textfleet_http_request_duration_seconds_sum", method="GET", route=route) > 0
    assert not any(job_id in name or job_id in str(labels) for name, labels in after)  # no raw paths


def test_metrics_still_answer_without_redis(make_client: MakeClient) -> None:
    api = make_client(redis_url="redis://127.0.0.1:1/0")  # nothing listens there
    response = api.get("/metrics")
    assert response.status_code == 200
    assert "textfleet_jobs_submitted_total" in response.text
