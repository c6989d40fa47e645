"""No request's text, prompt or metadata reaches any log of the fleet, error paths included.

Real parts: a Redis server of the test's own, PostgreSQL and SQLite, the API and a classify worker
(the real encoder and heads), each logging to its own file (console renderer: the one that used to
render every local variable). A unique marker goes through every refusal at the door, through jobs
that succeed, expire and time out in the worker, and through a canceled job; then every log the
fleet wrote is searched for it.

A second fleet adds a generate worker (the real vLLM engine), logging JSON at DEBUG: the marker is in
prompts, chat messages, a summary's text, metadata and, through a `choice` constraint, in the
generated text itself (so a result echoed by any logger, Celery's and vLLM's included, would show);
one job is then erased (`DELETE /v1/jobs/{id}`) and reads no longer hold the marker.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.utils.fleets import running_fleet
from tests.utils.poison import poisons
from textfleet.chaos.fleet import Fleet

pytestmark = [pytest.mark.e2e, pytest.mark.models, pytest.mark.timeout(900)]

MARKER = "MRK" + secrets.token_hex(8)
JSON_HEADERS = {"content-type": "application/json"}


@pytest.fixture(params=["postgresql", "sqlite"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fleet]:
    env = {
        "TEXTFLEET_LOG_FORMAT": "console",
        "TEXTFLEET_LOG_LEVEL": "DEBUG",
        "TEXTFLEET_WEBHOOK_SECRET": "whsec_" + "A" * 32,
    }
    with running_fleet(request.param, tmp_path, env=env, workers=("classify",)) as fleet:
        yield fleet


def _terminal(http: httpx.Client, job_ids: list[str], timeout_s: float = 300) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    statuses: dict[str, str] = {}
    for job_id in job_ids:
        while True:
            job = http.get(f"/v1/jobs/{job_id}", params={"wait": 10}).json()
            if job["status"] not in ("queued", "running"):
                statuses[job_id] = job["status"]
                break
            assert time.monotonic() < deadline, f"{job_id} still {job['status']}"
    return statuses


def test_no_payload_reaches_any_log_of_the_fleet(fleet: Fleet) -> None:
    with httpx.Client(base_url=fleet.api_url, timeout=60) as http:
        for poison in poisons(MARKER):
            response = http.post(f"/v1/jobs{poison.path}", content=poison.body, headers=JSON_HEADERS)
            assert response.status_code == 422, (poison.name, response.text)
        meta = {"ticket": MARKER, MARKER: MARKER}
        jobs = {
            "succeeds": {
                "task": "moderate",
                "input": {"text": f"{MARKER} I love sunny days"},
                "metadata": meta,
            },
            "expires": {
                "task": "risk",
                "input": {"text": MARKER},
                "params": {"ttl_s": 0.001},
                "metadata": meta,
            },
            "times out": {"task": "sentiment", "input": {"text": MARKER}, "params": {"timeout_s": 1e-6}},
        }
        ids = {name: http.post("/v1/jobs", json=body).json()["id"] for name, body in jobs.items()}
        batch = http.post("/v1/jobs/batch", json={"jobs": [jobs["succeeds"]] * 3})
        assert batch.status_code == 202
        canceled = http.post("/v1/jobs", json={"task": "sentiment", "input": {"text": MARKER}}).json()["id"]
        http.post(f"/v1/jobs/{canceled}/cancel")
        statuses = _terminal(http, [*ids.values(), *(job["id"] for job in batch.json()["items"]), canceled])

    assert statuses[ids["succeeds"]] == "succeeded"
    assert statuses[ids["expires"]] == "expired"
    logs = {path.name: path.read_text(errors="backslashreplace") for path in fleet.log_dir.glob("*.log")}
    assert {"api.log", "worker-classify.log"} <= set(logs)
    assert any(ids["succeeds"] in text for text in logs.values())  # the logs do speak of the jobs...
    for name, text in logs.items():
        assert MARKER not in text, f"{name} holds a request's payload"  # ...never of their content


GENERATION_ENV = {
    "TEXTFLEET_LOG_FORMAT": "json",
    "TEXTFLEET_LOG_LEVEL": "DEBUG",
    "TEXTFLEET_MAX_NUM_SEQS": "8",
    "TEXTFLEET_CPU_KVCACHE_GIB": "1",
}


@pytest.mark.timeout(1500)
def test_no_prompt_or_generated_text_reaches_any_log(tmp_path: Path) -> None:
    meta = {"ticket": MARKER, MARKER: [MARKER]}
    choice = {"type": "choice", "choice": [f"{MARKER}-yes", f"{MARKER}-no"]}
    jobs = {
        "prompt": {"task": "generate", "input": {"prompt": f"{MARKER} says"}, "params": {"max_tokens": 8}},
        "chosen": {
            "task": "generate",
            "input": {"prompt": "Answer yes or no:"},
            "params": {"max_tokens": 64, "response_format": choice},
            "metadata": meta,
        },
        "chat": {
            "task": "generate",
            "input": {"messages": [{"role": "user", "content": f"Repeat {MARKER}"}]},
            "params": {"max_tokens": 8},
            "metadata": meta,
        },
        "summary": {
            "task": "summarize",
            "input": {"text": f"{MARKER} met {MARKER}."},
            "params": {"max_tokens": 8},
        },
        "classified": {"task": "sentiment", "input": {"text": f"{MARKER} is great"}, "metadata": meta},
    }
    with (
        running_fleet(
            "postgresql", tmp_path, env=GENERATION_ENV, workers=("classify", "generate"), ready_timeout_s=900
        ) as fleet,
        httpx.Client(base_url=fleet.api_url, timeout=60) as http,
    ):
        ids = {}
        for name, body in jobs.items():
            response = http.post("/v1/jobs", json=body)
            assert response.status_code == 202, (name, response.text)
            ids[name] = response.json()["id"]
        statuses = _terminal(http, list(ids.values()))
        chosen = http.get(f"/v1/jobs/{ids['chosen']}").json()
        erased = http.delete(f"/v1/jobs/{ids['chosen']}")  # erasure on request, through the stack
        assert erased.status_code == 200, erased.text
        assert erased.json()["erased_at"] is not None
        assert MARKER not in http.get(f"/v1/jobs/{ids['chosen']}").text
        logs = {path.name: path.read_text(errors="backslashreplace") for path in fleet.log_dir.glob("*.log")}

    assert set(statuses.values()) == {"succeeded"}, statuses
    assert MARKER in chosen["result"]["text"]  # the generated text holds the marker too
    assert {"api.log", "worker-classify.log", "worker-generate.log"} <= set(logs)
    assert all(any(job_id in text for text in logs.values()) for job_id in ids.values())
    for name, text in logs.items():
        assert MARKER not in text, f"{name} holds a job's input, metadata or result"
