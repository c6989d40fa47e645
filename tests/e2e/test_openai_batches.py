"""The official `openai` client running batches on a running fleet (`textfleet dev`: real vLLM, real
classifiers, real Redis, PostgreSQL then SQLite): upload, create, poll, download; one output line per
`custom_id`; validation errors by line; cancel."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.utils.batches import batch_line, jsonl, moderation_lines

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

POLL_TIMEOUT_S = 600


@pytest.fixture
def oai(stack: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{stack}/v1", api_key="textfleet", timeout=300, max_retries=0) as client:
        yield client


def _submit(oai: openai.OpenAI, lines: list[dict[str, Any] | str], endpoint: Any) -> Any:
    uploaded = oai.files.create(file=("requests.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
    assert uploaded.purpose == "batch"
    return oai.batches.create(
        input_file_id=uploaded.id, endpoint=endpoint, completion_window="24h", metadata={"test": "e2e"}
    )


def _wait(oai: openai.OpenAI, batch_id: str) -> Any:
    deadline = time.monotonic() + POLL_TIMEOUT_S
    while True:
        batch = oai.batches.retrieve(batch_id)
        if batch.status in {"completed", "failed", "expired", "cancelled"}:
            return batch
        assert time.monotonic() < deadline, f"batch still {batch.status}: {batch.request_counts}"
        time.sleep(0.5)


def _content(oai: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    return [json.loads(line) for line in oai.files.content(file_id).text.splitlines()]


def test_moderation_batch_one_line_per_custom_id(oai: openai.OpenAI, client: httpx.Client) -> None:
    lines: list[dict[str, Any] | str] = [
        *moderation_lines(30),
        batch_line("insult", "/v1/moderations", {"input": "You are a worthless idiot and a pathetic moron."}),
        batch_line("pair", "/v1/moderations", {"input": ["Lovely weather.", "I will hurt you."]}),
    ]
    created = _submit(oai, lines, "/v1/moderations")
    assert created.status == "in_progress"
    assert created.request_counts is not None and created.request_counts.total == 32
    batch = _wait(oai, created.id)
    assert batch.status == "completed", batch
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (32, 0)
    assert batch.metadata == {"test": "e2e"}

    output = _content(oai, batch.output_file_id)
    assert sorted(line["custom_id"] for line in output) == sorted(
        str(line["custom_id"]) for line in lines if isinstance(line, dict)
    )
    assert _content(oai, batch.error_file_id) == []
    by_id = {line["custom_id"]: line for line in output}
    insult = by_id["insult"]["response"]
    assert insult["status_code"] == 200
    assert insult["body"]["results"][0]["flagged"] is True
    assert len(by_id["pair"]["response"]["body"]["results"]) == 2
    job = client.get(f"/v1/jobs/{insult['request_id']}").json()
    assert (job["status"], job["task"], job["priority"]) == ("succeeded", "moderate", 2)  # below interactive


def test_chat_and_jobs_batches(oai: openai.OpenAI) -> None:
    model = oai.models.list().data[0].id
    chat = [
        batch_line(
            f"chat-{i}",
            "/v1/chat/completions",
            {
                "model": model,
                "messages": [{"role": "user", "content": f"Count to {i + 2}."}],
                "max_tokens": 8,
            },
        )
        for i in range(3)
    ]
    batch = _wait(oai, _submit(oai, chat, "/v1/chat/completions").id)
    assert batch.status == "completed", batch
    output = _content(oai, batch.output_file_id)
    assert sorted(line["custom_id"] for line in output) == ["chat-0", "chat-1", "chat-2"]
    for line in output:
        body = line["response"]["body"]
        assert body["object"] == "chat.completion"
        assert body["model"] == model
        assert body["choices"][0]["message"]["role"] == "assistant"
        assert 0 < body["usage"]["completion_tokens"] <= 8

    jobs = [
        batch_line("s", "/v1/jobs", {"task": "sentiment", "input": {"text": "What a wonderful day!"}}),
        batch_line("r", "/v1/jobs", {"task": "risk", "input": {"text": "Send your bank password now."}}),
    ]
    batch = _wait(oai, _submit(oai, jobs, "/v1/jobs").id)
    assert batch.status == "completed", batch
    by_id = {line["custom_id"]: line["response"]["body"] for line in _content(oai, batch.output_file_id)}
    assert by_id["s"]["result"]["label"] == "positive"
    assert by_id["r"]["task"] == "risk"


def test_bad_lines_fail_validation(oai: openai.OpenAI) -> None:
    lines: list[dict[str, Any] | str] = [
        *moderation_lines(2),
        "not json",
        batch_line("req-0", "/v1/moderations", {"input": "x"}),
    ]
    batch = _submit(oai, lines, "/v1/moderations")
    assert batch.status == "failed"
    assert batch.errors is not None and batch.errors.data is not None
    assert [(e.line, e.code) for e in batch.errors.data] == [
        (3, "invalid_json_line"),
        (4, "duplicate_custom_id"),
    ]


def test_cancel_a_batch(oai: openai.OpenAI) -> None:
    model = oai.models.list().data[0].id
    chat = [
        batch_line(
            f"c{i}",
            "/v1/chat/completions",
            {
                "model": model,
                "messages": [{"role": "user", "content": "Tell a long story."}],
                "max_tokens": 64,
            },
        )
        for i in range(40)
    ]
    created = _submit(oai, chat, "/v1/chat/completions")
    cancelling = oai.batches.cancel(created.id)
    assert cancelling.status in {"cancelling", "cancelled"}
    batch = _wait(oai, created.id)
    assert batch.status == "cancelled"
    assert batch.request_counts is not None
    lines = _content(oai, batch.output_file_id) + _content(oai, batch.error_file_id)
    assert sorted(line["custom_id"] for line in lines) == sorted(f"c{i}" for i in range(40))
    assert any(line["error"] and line["error"]["code"] == "batch_cancelled" for line in lines)
