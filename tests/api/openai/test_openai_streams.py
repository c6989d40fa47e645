"""Streams over real HTTP (`textfleet api`, no workers): the opening chunk arrives before the job runs,
and a client that goes away cancels the job it left (no GPU time spent on an answer nobody reads)."""

from __future__ import annotations

import json
import time

import httpx

from shared.db.models import Job
from tests.api.conftest import Rows, Serve


def _job_when(rows: Rows, job_id: str, status: str, within_s: float = 20.0) -> Job:
    deadline = time.monotonic() + within_s
    while True:
        job = rows.get(job_id)
        assert job is not None
        if job.status == status or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def test_a_stream_left_by_its_client_cancels_its_job(serve: Serve, rows: Rows) -> None:
    live = serve()
    with httpx.Client(base_url=live.url, timeout=30) as http:
        model = http.get("/v1/models").json()["data"][0]["id"]
        body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "stream": True}
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            first = next(response.iter_lines())
            assert first.startswith("data: ")
            chunk = json.loads(first.removeprefix("data: "))
            assert chunk["object"] == "chat.completion.chunk"
            assert chunk["choices"][0]["delta"] == {"role": "assistant", "content": ""}
            job_id = chunk["id"].removeprefix("chatcmpl-")
            queued = rows.get(job_id)
            assert queued is not None and queued.status == "queued" and queued.priority == 9
    job = _job_when(rows, job_id, "canceled")
    assert job.status == "canceled", "the job of a stream its client left is canceled"
