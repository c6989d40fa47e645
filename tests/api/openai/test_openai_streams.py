"""Streams over real HTTP (`textfleet api`, no workers; the test plays the worker): the opening chunk
arrives before the job runs, the text published on the job's stream channel is relayed as it grows, the
recorded result ends the stream, and a client that goes away cancels the job it left."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest
import redis

from shared.constants import job_stream_channel
from shared.db.models import Job
from shared.events import announce_terminal
from tests.api.conftest import Rows, Serve

#: a stream whose job never ends would be held open (keep-alives) until the API's own deadline
pytestmark = pytest.mark.timeout(90)


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


def _play_worker(rows: Rows, redis_url: str, job_id: str, texts: list[str], final: str) -> None:
    """Publish `texts` as a streamed generation would, then record `final` as the job's result."""
    client = redis.Redis.from_url(redis_url)
    try:
        channel = job_stream_channel(job_id)
        deadline = time.monotonic() + 10
        while client.pubsub_numsub(channel)[0][1] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)  # the API subscribes right after it sends the opening chunk
        for text in texts:
            client.publish(channel, text)
            time.sleep(0.05)
        usage = {"prompt_tokens": 9, "completion_tokens": 4}
        result = {"text": final, "finish_reason": "length", "usage": usage}  # as the worker records it
        rows.set(job_id, status="succeeded", result=result, prompt_tokens=9, completion_tokens=4)
        announce_terminal(client, job_id, "generate", "succeeded")
    finally:
        client.close()


def _stream(
    http: httpx.Client, body: dict[str, Any], rows: Rows, redis_url: str, texts: list[str], final: str
) -> list[Any]:
    """Stream a chat completion while the test plays the worker; the `data:` payloads received."""
    events: list[Any] = []
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        opening = json.loads(next(lines).removeprefix("data: "))
        job_id = opening["id"].removeprefix("chatcmpl-")
        assert rows.get(job_id) is not None and rows.get(job_id).params["stream"] is True  # type: ignore[union-attr]
        worker = threading.Thread(target=_play_worker, args=(rows, redis_url, job_id, texts, final))
        worker.start()
        for line in lines:
            if line.startswith("data: "):
                payload = line.removeprefix("data: ")
                events.append(payload if payload == "[DONE]" else json.loads(payload))
        worker.join(timeout=10)
    return events


def test_the_text_is_relayed_as_it_grows_and_the_result_ends_it(
    serve: Serve, rows: Rows, redis_url: str
) -> None:
    live = serve()
    with httpx.Client(base_url=live.url, timeout=30) as http:
        model = http.get("/v1/models").json()["data"][0]["id"]
        body = {
            "model": model,
            "messages": [{"role": "user", "content": "Sky?"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        # a lost or repeated update changes nothing: each holds the whole text so far
        events = _stream(
            http, body, rows, redis_url, ["The", "The", "The sky is", "The sky is blue"], "The sky is blue."
        )
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    deltas = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert deltas == ["The", " sky is", " blue", ".", None]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 13


def test_a_stream_whose_job_ran_again_differently_ends_with_an_error(
    serve: Serve, rows: Rows, redis_url: str
) -> None:
    live = serve()
    with httpx.Client(base_url=live.url, timeout=30) as http:
        model = http.get("/v1/models").json()["data"][0]["id"]
        body = {"model": model, "messages": [{"role": "user", "content": "Sky?"}], "stream": True}
        events = _stream(http, body, rows, redis_url, ["The sky"], "A grey sky.")
    assert events[-1] == "[DONE]"
    assert events[-2]["error"]["code"] == "stream_interrupted"
