"""End to end: the running API's `/metrics` and `/v1/queues`, and a running worker's side-port
`/metrics` (found through `GET /v1/queues` workers), move as real jobs run."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.utils.metrics import Samples, parse_metrics, value

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return parse_metrics(response.text)


def worker_metrics_url(client: httpx.Client, queue: str) -> str:
    queues = client.get("/v1/queues")
    assert queues.status_code == 200, queues.text
    workers = queues.json()["queues"][queue]["workers"]
    assert workers, f"no live {queue} worker in {queues.json()}"
    port = workers[0]["http_port"]
    assert isinstance(port, int), workers
    return f"http://127.0.0.1:{port}/metrics"


def run_jobs(client: httpx.Client, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    created = client.post("/v1/jobs/batch", json={"jobs": bodies})
    assert created.status_code == 202, created.text
    done = []
    for item in created.json()["items"]:
        for _ in range(5):
            job = client.get(f"/v1/jobs/{item['id']}", params={"wait": 60}).json()
            if job["status"] not in ("queued", "running"):
                break
        assert job["status"] == "succeeded", job
        done.append(job)
    return done


def test_api_and_worker_metrics_move(client: httpx.Client, stack: str) -> None:
    generate_url = worker_metrics_url(client, "generate")
    classify_url = worker_metrics_url(client, "classify")
    assert generate_url != classify_url
    api_before = scrape(f"{stack}/metrics")
    gen_before = scrape(generate_url)
    cls_before = scrape(classify_url)

    prompt = {"prompt": "Count: one, two, three,"}
    generate = [{"task": "generate", "input": prompt, "params": {"max_tokens": 8, "temperature": 0}}] * 3
    sentiment = [{"task": "sentiment", "input": {"text": f"I like this {i}."}} for i in range(4)]
    jobs = run_jobs(client, generate + sentiment)
    completion = sum(job["result"]["usage"]["completion_tokens"] for job in jobs[:3])
    assert completion > 0

    api_after = scrape(f"{stack}/metrics")
    submitted = "textfleet_jobs_submitted_total"
    assert value(api_after, submitted, task="generate") - value(api_before, submitted, task="generate") == 3
    assert value(api_after, submitted, task="sentiment") - value(api_before, submitted, task="sentiment") == 4
    batch = {"method": "POST", "route": "/v1/jobs/batch", "status": "202"}
    assert value(api_after, "textfleet_http_requests_total", **batch) >= 1
    for queue in ("generate", "classify"):  # every job is done: nothing waits, nothing is outstanding
        assert value(api_after, "textfleet_queue_outstanding", queue=queue) == 0
        depth = client.get(f"/v1/queues/{queue}").json()
        assert depth == {"queue": queue, "waiting": 0, "in_flight": 0, "outstanding": 0}

    gen_after = scrape(generate_url)
    ok = {"task": "generate", "status": "succeeded"}
    assert (
        value(gen_after, "textfleet_jobs_finished_total", **ok)
        - value(gen_before, "textfleet_jobs_finished_total", **ok)
        == 3
    )
    generated = value(gen_after, "textfleet_generated_tokens_total") - value(
        gen_before, "textfleet_generated_tokens_total"
    )
    assert generated == completion
    assert value(gen_after, "textfleet_prompt_tokens_total") > value(
        gen_before, "textfleet_prompt_tokens_total"
    )
    wait = "textfleet_job_queue_wait_seconds_count"
    assert value(gen_after, wait, task="generate") - value(gen_before, wait, task="generate") == 3
    run = "textfleet_job_run_seconds_count"
    assert value(gen_after, run, **ok) - value(gen_before, run, **ok) == 3
    assert ("textfleet_engine_running_requests", frozenset()) in gen_after
    assert ("textfleet_worker_in_flight_jobs", frozenset()) in gen_after

    cls_after = scrape(classify_url)
    sent = {"task": "sentiment", "status": "succeeded"}
    assert (
        value(cls_after, "textfleet_jobs_finished_total", **sent)
        - value(cls_before, "textfleet_jobs_finished_total", **sent)
        == 4
    )
    batches = value(cls_after, "textfleet_engine_batch_size_sum") - value(
        cls_before, "textfleet_engine_batch_size_sum"
    )
    assert batches >= 4  # every sentiment text went through a classifier batch
