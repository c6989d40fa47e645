"""End to end over HTTP: real API, real Celery workers (vLLM engine, PyTorch classifiers), real Redis,
real database. Every task must return a correct result."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
import pytest

from shared.schemas import (
    EntitiesResult,
    GenerateResult,
    JobOut,
    ModerationResult,
    RiskResult,
    SentimentResult,
    SummarizeResult,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def run_job(client: httpx.Client, body: dict[str, Any], wait: int = 60) -> dict[str, Any]:
    created = client.post("/v1/jobs", json=body)
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    assert created.headers["location"].endswith(f"/v1/jobs/{job_id}")
    for _ in range(5):
        job = client.get(f"/v1/jobs/{job_id}", params={"wait": wait}).json()
        if job["status"] not in ("queued", "running"):
            JobOut.model_validate(job)
            return job
    pytest.fail(f"job {job_id} not finished: {job}")


def test_generate_prompt(client: httpx.Client) -> None:
    job = run_job(
        client,
        {
            "task": "generate",
            "input": {"prompt": "The capital of France is"},
            "params": {"max_tokens": 12, "temperature": 0},
        },
    )
    assert job["status"] == "succeeded", job
    result = GenerateResult.model_validate(job["result"])
    assert result.text.strip()
    assert 0 < result.usage.completion_tokens <= 12
    assert result.usage.prompt_tokens >= 4
    assert job["usage"] == job["result"]["usage"]
    assert job["attempts"] == 1 and job["worker"].startswith("generate@")


def test_generate_chat_answers(client: httpx.Client) -> None:
    job = run_job(
        client,
        {
            "task": "generate",
            "input": {
                "messages": [
                    {"role": "user", "content": "What is the capital of France? Answer in one word."}
                ]
            },
            "params": {"max_tokens": 16, "temperature": 0},
        },
    )
    assert job["status"] == "succeeded", job
    assert "paris" in job["result"]["text"].lower()


def test_generate_exact_length_and_seed(client: httpx.Client) -> None:
    body = {
        "task": "generate",
        "input": {"prompt": "Once upon a time"},
        "params": {"max_tokens": 20, "min_tokens": 20, "temperature": 0.9, "seed": 1234},
    }
    first, second = run_job(client, body), run_job(client, body)
    assert first["result"]["usage"]["completion_tokens"] == 20
    assert first["result"]["finish_reason"] == "length"
    assert first["result"]["text"] == second["result"]["text"]


def test_summarize(client: httpx.Client) -> None:
    text = (
        "The city council met on Tuesday to discuss new bicycle lanes. After two hours of debate, members "
        "voted seven to two to build protected lanes on Main Street next spring. Shop owners worried about "
        "parking, but the council promised a new car park nearby."
    )
    job = run_job(client, {"task": "summarize", "input": {"text": text}, "params": {"max_tokens": 60}})
    assert job["status"] == "succeeded", job
    result = SummarizeResult.model_validate(job["result"])
    assert result.summary and result.summary != text
    assert 0 < result.usage.completion_tokens <= 60
    assert result.usage.prompt_tokens > len(text.split())


def test_moderate(client: httpx.Client) -> None:
    threat = run_job(
        client,
        {"task": "moderate", "input": {"text": "I am going to find you and kill you, you worthless idiot."}},
    )
    benign = run_job(
        client, {"task": "moderate", "input": {"text": "Thanks for the lovely dinner last night!"}}
    )
    for job in (threat, benign):
        assert job["status"] == "succeeded", job
        ModerationResult.model_validate(job["result"])
        assert len(job["result"]["category_scores"]) == 13
    assert threat["result"]["flagged"] is True
    assert benign["result"]["flagged"] is False
    t, b = threat["result"]["category_scores"], benign["result"]["category_scores"]
    assert max(t["violence"], t["harassment/threatening"]) > max(b["violence"], b["harassment/threatening"])


def test_risk(client: httpx.Client) -> None:
    scam = run_job(
        client,
        {
            "task": "risk",
            "input": {
                "text": "URGENT! Your bank account is suspended. Reply with your PIN and card number "
                "to claim your $5000 refund."
            },
        },
    )
    benign = run_job(client, {"task": "risk", "input": {"text": "See you at the football game on Saturday."}})
    for job in (scam, benign):
        assert job["status"] == "succeeded", job
        RiskResult.model_validate(job["result"])
    assert scam["result"]["score"] > benign["result"]["score"]
    assert scam["result"]["level"] in ("medium", "high")
    assert benign["result"]["level"] == "low"


def test_sentiment(client: httpx.Client) -> None:
    pos = run_job(
        client, {"task": "sentiment", "input": {"text": "I absolutely love this phone, it is fantastic!"}}
    )
    neg = run_job(
        client,
        {"task": "sentiment", "input": {"text": "This was the worst service I have ever had. Terrible."}},
    )
    for job in (pos, neg):
        assert job["status"] == "succeeded", job
        SentimentResult.model_validate(job["result"])
        assert abs(sum(job["result"]["scores"].values()) - 1) < 1e-3
    assert pos["result"]["label"] == "positive"
    assert neg["result"]["label"] == "negative"


def test_entities_offsets_point_into_the_input(client: httpx.Client) -> None:
    text = (
        "Ünïcode\u00a0first:\tAngela Merkel met Emmanuel Macron in Paris on March 5, 2024 😀. "
        "Pay $1,200.50 to billing@example.com or call +44 20 7946 0958; see https://example.org/x."
    )
    job = run_job(client, {"task": "entities", "input": {"text": text}})
    assert job["status"] == "succeeded", job
    result = EntitiesResult.model_validate(job["result"])
    for entity in result.entities:
        assert text[entity.start : entity.end] == entity.text
    found = {(e.type, e.text) for e in result.entities}
    assert {
        ("DATE", "March 5, 2024"),
        ("MONEY", "$1,200.50"),
        ("EMAIL", "billing@example.com"),
        ("PHONE", "+44 20 7946 0958"),
        ("URL", "https://example.org/x"),
    } <= found
    assert {e.type for e in result.entities} & {"PERSON", "LOCATION"}  # the model found names too


def test_concurrent_generation_is_batched(client: httpx.Client) -> None:
    """16 jobs at once: all succeed, and the worker ran them side by side (continuous batching)."""
    body = {
        "task": "generate",
        "input": {"prompt": "Count to ten:"},
        "params": {"max_tokens": 24, "min_tokens": 24},
    }
    with ThreadPoolExecutor(16) as pool:
        jobs = list(pool.map(lambda _: run_job(client, body), range(16)))
    assert all(j["status"] == "succeeded" for j in jobs)
    spans = [
        (datetime.fromisoformat(j["started_at"]), datetime.fromisoformat(j["finished_at"])) for j in jobs
    ]
    overlap = max(sum(1 for s, f in spans if s <= start < f) for start, _ in spans)
    assert overlap >= 4, f"at most {overlap} jobs ran at once"


def test_model_failure_fails_job_and_worker_serves_on(client: httpx.Client) -> None:
    too_long = run_job(
        client, {"task": "generate", "input": {"prompt": "word " * 6000}, "params": {"max_tokens": 8}}
    )
    assert too_long["status"] == "failed"
    assert too_long["error"]["code"] == "prompt_too_long"
    assert too_long["error"]["message"]
    after = run_job(client, {"task": "generate", "input": {"prompt": "Hello"}, "params": {"max_tokens": 4}})
    assert after["status"] == "succeeded"


def test_bad_input_writes_nothing(client: httpx.Client) -> None:
    before = client.get("/v1/jobs", params={"limit": 200}).json()["items"]
    bad_bodies = [
        {"task": "translate", "input": {"text": "x"}},
        {"task": "moderate", "input": {}},
        {"task": "generate", "input": {"prompt": "x"}, "params": {"max_tokens": 10**6}},
        {"task": "sentiment", "input": {"text": "x" * 32_001}},
    ]
    for body in bad_bodies:
        response = client.post("/v1/jobs", json=body)
        assert 400 <= response.status_code < 500
        assert response.json()["error"]["message"]
    after = client.get("/v1/jobs", params={"limit": 200}).json()["items"]
    assert [j["id"] for j in after] == [j["id"] for j in before]
    assert client.get("/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV").status_code == 404


def test_list_newest_first_with_filters(client: httpx.Client) -> None:
    ids = [run_job(client, {"task": "sentiment", "input": {"text": f"fine {i}"}})["id"] for i in range(3)]
    page = client.get("/v1/jobs", params={"task": "sentiment", "status": "succeeded", "limit": 2}).json()
    assert [j["id"] for j in page["items"]] == ids[::-1][:2]
    rest = client.get(
        "/v1/jobs", params={"task": "sentiment", "limit": 2, "cursor": page["next_cursor"]}
    ).json()
    assert rest["items"][0]["id"] == ids[0]


def test_cli_submit_and_get(stack: str) -> None:
    cli = [sys.executable, "-m", "textfleet"]
    out = subprocess.run(
        [*cli, "submit", "sentiment", "--input", '{"text": "What a great day!"}', "--wait", "--url", stack],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    job = json.loads(out)
    assert job["status"] == "succeeded" and job["result"]["label"] == "positive"
    again = json.loads(
        subprocess.run(
            [*cli, "get", job["id"], "--url", stack], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    )
    assert again["id"] == job["id"] and again["result"] == job["result"]
    bad = subprocess.run(
        [*cli, "submit", "nope", "--input", "{}", "--url", stack], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 1 and "task" in bad.stderr
