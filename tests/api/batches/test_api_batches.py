"""`/v1/batches` on real Redis and real databases: validation by line, jobs, counts, output, cancel, expiry.

The workers' part (a job reaching a terminal state) is played by writing the jobs' rows; the fleet
end to end is tested with the official client in tests/e2e/test_openai_batches.py.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from shared.db.batch_models import Batch, BatchRequest
from shared.db.models import utcnow
from shared.db.session import session_scope
from tests.api.conftest import Broker, Rows
from tests.utils.batches import batch_job_ids, batch_line, finish_batch_jobs, jsonl, moderation_lines

MODERATION = {"flagged": True, "categories": {"hate": True}, "category_scores": {"hate": 0.9}}


def _upload(api: TestClient, lines: list[dict[str, Any] | str]) -> str:
    response = api.post("/v1/files", files={"file": ("in.jsonl", jsonl(lines))}, data={"purpose": "batch"})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def _create(
    api: TestClient, lines: list[dict[str, Any] | str], endpoint: str = "/v1/moderations", **extra: Any
) -> dict[str, Any]:
    file_id = _upload(api, lines)
    response = api.post(
        "/v1/batches",
        json={"input_file_id": file_id, "endpoint": endpoint, "completion_window": "24h", **extra},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _lines(api: TestClient, file_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/v1/files/{file_id}/content")
    assert response.status_code == 200
    return [json.loads(line) for line in response.text.splitlines()]


def test_a_batch_is_jobs_at_batch_priority(
    api: TestClient, broker: Broker, rows: Rows, database_url: str
) -> None:
    batch = _create(api, moderation_lines(50), metadata={"team": "trust"})
    assert batch["object"] == "batch"
    assert batch["status"] == "in_progress"
    assert batch["request_counts"] == {"total": 50, "completed": 0, "failed": 0}
    assert batch["metadata"] == {"team": "trust"}
    assert batch["expires_at"] - batch["created_at"] == 24 * 3600
    ids = batch_job_ids(database_url, batch["id"])
    assert sorted(ids) == sorted(f"req-{i}" for i in range(50))
    queued = broker.jobs()
    assert set(ids.values()) <= set(queued)
    for job_id in ids.values():
        job = rows.get(job_id)
        assert job is not None
        assert (job.task, job.priority, job.status) == ("moderate", 2, "queued")
    assert rows.get(ids["req-7"]).input == {"text": "text number 7"}  # type: ignore[union-attr]


def test_counts_partial_output_and_completion(api: TestClient, database_url: str) -> None:
    batch = _create(api, moderation_lines(10))
    ids = batch_job_ids(database_url, batch["id"])
    finish_batch_jobs(database_url, [ids[f"req-{i}"] for i in range(4)], result=MODERATION)
    finish_batch_jobs(database_url, [ids["req-4"]], status="failed")

    running = api.get(f"/v1/batches/{batch['id']}").json()
    assert running["status"] == "in_progress"
    assert running["request_counts"] == {"total": 10, "completed": 4, "failed": 1}
    partial = _lines(api, running["output_file_id"])  # downloadable while the batch runs
    assert sorted(line["custom_id"] for line in partial) == [f"req-{i}" for i in range(4)]
    first = next(line for line in partial if line["custom_id"] == "req-0")
    assert first["id"] == f"batch_req_{ids['req-0']}"
    assert first["error"] is None
    assert first["response"]["status_code"] == 200
    assert first["response"]["request_id"] == ids["req-0"]
    result = first["response"]["body"]["results"][0]
    assert result["flagged"] is True
    assert result["category_scores"]["hate"] == 0.9  # OpenAI's 13 categories, as /v1/moderations answers
    assert result["category_applied_input_types"]["hate"] == ["text"]
    assert len(result["categories"]) == 13
    [failed] = _lines(api, running["error_file_id"])
    assert failed["custom_id"] == "req-4"
    assert failed["response"]["status_code"] == 500
    assert failed["response"]["body"]["error"]["code"] == "model_error"

    finish_batch_jobs(database_url, [ids[f"req-{i}"] for i in range(5, 10)], result=MODERATION)
    done = api.get(f"/v1/batches/{batch['id']}").json()
    assert done["status"] == "completed"
    assert done["completed_at"] is not None
    assert done["request_counts"] == {"total": 10, "completed": 9, "failed": 1}
    everything = _lines(api, done["output_file_id"]) + _lines(api, done["error_file_id"])
    assert sorted(line["custom_id"] for line in everything) == sorted(ids)  # one line per request


def test_bad_lines_fail_the_batch_with_their_line_numbers(api: TestClient, rows: Rows) -> None:
    before = rows.count()
    lines: list[dict[str, Any] | str] = [
        *moderation_lines(1, prefix="ok"),
        "{not json",
        batch_line("ok-0", "/v1/moderations", {"input": "again"}),
        batch_line("url", "/v1/embeddings", {"input": "x"}),
        batch_line("body", "/v1/moderations", {"input": ""}),
        batch_line("nul", "/v1/moderations", {"input": "a\u0000b"}),
        {"custom_id": "no-method", "url": "/v1/moderations", "body": {"input": "x"}},
    ]
    batch = _create(api, lines)
    assert batch["status"] == "failed"
    assert batch["failed_at"] is not None
    assert batch["output_file_id"] is None
    assert batch["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    errors = batch["errors"]["data"]
    assert batch["errors"]["object"] == "list"
    assert [(e["line"], e["code"]) for e in errors] == [
        (2, "invalid_json_line"),
        (3, "duplicate_custom_id"),
        (4, "mismatched_url"),
        (5, "invalid_body"),
        (6, "invalid_body"),
        (7, "invalid_request"),
    ]
    assert errors[3]["param"] == "body.input"
    assert all(e["message"].startswith(f"line {e['line']}: ") for e in errors)
    assert rows.count() == before  # nothing runs


def test_chat_and_completion_lines_become_generate_jobs(
    api: TestClient, rows: Rows, database_url: str
) -> None:
    model = api.get("/v1/models").json()["data"][0]["id"]
    chat = batch_line(
        "c",
        "/v1/chat/completions",
        {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5},
    )
    batch = _create(api, [chat], endpoint="/v1/chat/completions")
    job_id = batch_job_ids(database_url, batch["id"])["c"]
    job = rows.get(job_id)
    assert job is not None
    assert (job.task, job.input, job.params, job.priority) == (
        "generate",
        {"messages": [{"role": "user", "content": "Hi"}]},
        {"max_tokens": 5},  # no interactive queue time limit: the batch's window applies
        2,
    )
    rows.set(
        job_id,
        status="succeeded",
        result={
            "text": "Hello",
            "finish_reason": "stop",
            "usage": {"prompt_tokens": 3, "completion_tokens": 1},
        },
        prompt_tokens=3,
        completion_tokens=1,
        finished_at=utcnow(),
    )
    [line] = _lines(api, batch["output_file_id"])
    body = line["response"]["body"]
    assert body["object"] == "chat.completion"
    assert body["model"] == model
    assert body["choices"][0]["message"]["content"] == "Hello"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}

    bad = [
        batch_line("n", "/v1/completions", {"model": model, "prompt": "Hi", "n": 2}),
        batch_line("m", "/v1/completions", {"model": "gpt-4o", "prompt": "Hi"}),
        batch_line("s", "/v1/completions", {"model": model, "prompt": "Hi", "stream": True}),
    ]
    failed = _create(api, bad, endpoint="/v1/completions")
    assert [(e["line"], e["param"]) for e in failed["errors"]["data"]] == [
        (1, "body.n"),
        (2, "body.model"),
        (3, "body.stream"),
    ]


def test_a_request_of_several_inputs_is_one_line(api: TestClient, database_url: str, rows: Rows) -> None:
    lines = [batch_line("many", "/v1/moderations", {"input": ["one", "two", "three"]})]
    batch = _create(api, lines)
    assert batch["request_counts"]["total"] == 1
    with session_scope(database_url) as session:
        job_ids = [
            job_id
            for (job_id,) in session.execute(
                select(BatchRequest.job_id)
                .where(BatchRequest.batch_id == batch["id"])
                .order_by(BatchRequest.item)
            )
        ]
    assert [rows.get(job_id).input["text"] for job_id in job_ids] == ["one", "two", "three"]  # type: ignore[union-attr]
    finish_batch_jobs(database_url, job_ids[:2], result=MODERATION)
    assert api.get(f"/v1/batches/{batch['id']}").json()["request_counts"]["completed"] == 0
    assert _lines(api, batch["output_file_id"]) == []  # not before all its inputs are done
    finish_batch_jobs(database_url, job_ids[2:], result=MODERATION)
    done = api.get(f"/v1/batches/{batch['id']}").json()
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 1, "completed": 1, "failed": 0}
    [line] = _lines(api, batch["output_file_id"])
    assert len(line["response"]["body"]["results"]) == 3


def test_jobs_lines_keep_their_own_priority(api: TestClient, rows: Rows, database_url: str) -> None:
    lines = [
        batch_line("a", "/v1/jobs", {"task": "sentiment", "input": {"text": "good"}}),
        batch_line("b", "/v1/jobs", {"task": "risk", "input": {"text": "pay now"}, "priority": 7}),
    ]
    batch = _create(api, lines, endpoint="/v1/jobs")
    ids = batch_job_ids(database_url, batch["id"])
    bad = batch_line("c", "/v1/jobs", {"task": "moderate", "input": {"text": ""}})
    assert _create(api, [bad], endpoint="/v1/jobs")["errors"]["data"][0]["param"] == "body.input.text"
    assert rows.get(ids["a"]).priority == 2  # type: ignore[union-attr]
    assert rows.get(ids["b"]).priority == 7  # type: ignore[union-attr]


def test_cancel_cancels_queued_jobs_and_keeps_finished(
    api: TestClient, rows: Rows, database_url: str
) -> None:
    batch = _create(api, moderation_lines(6))
    ids = batch_job_ids(database_url, batch["id"])
    finish_batch_jobs(database_url, [ids["req-0"]], result=MODERATION)
    rows.set(ids["req-1"], status="running")

    cancelling = api.post(f"/v1/batches/{batch['id']}/cancel").json()
    assert cancelling["status"] == "cancelling"
    assert rows.get(ids["req-2"]).status == "canceled"  # type: ignore[union-attr]
    finish_batch_jobs(database_url, [ids["req-1"]], result=MODERATION)  # the running one finishes
    cancelled = api.get(f"/v1/batches/{batch['id']}").json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["request_counts"] == {"total": 6, "completed": 2, "failed": 4}
    assert sorted(line["custom_id"] for line in _lines(api, cancelled["output_file_id"])) == [
        "req-0",
        "req-1",
    ]
    errors = _lines(api, cancelled["error_file_id"])
    assert len(errors) == 4
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}
    again = api.post(f"/v1/batches/{batch['id']}/cancel")
    assert again.json()["status"] == "cancelled"


def test_a_finished_batch_cannot_be_cancelled(api: TestClient, database_url: str) -> None:
    batch = _create(api, moderation_lines(1))
    finish_batch_jobs(
        database_url, list(batch_job_ids(database_url, batch["id"]).values()), result=MODERATION
    )
    assert api.get(f"/v1/batches/{batch['id']}").json()["status"] == "completed"
    response = api.post(f"/v1/batches/{batch['id']}/cancel")
    assert response.status_code == 409


def test_expiry_keeps_what_finished(api: TestClient, rows: Rows, database_url: str) -> None:
    batch = _create(api, moderation_lines(3), completion_window="1m")
    ids = batch_job_ids(database_url, batch["id"])
    finish_batch_jobs(database_url, [ids["req-0"]], result=MODERATION)
    with session_scope(database_url) as session:
        session.execute(
            update(Batch).where(Batch.id == batch["id"]).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    expired = api.get(f"/v1/batches/{batch['id']}").json()
    assert expired["status"] == "expired"
    assert expired["expired_at"] is not None
    assert rows.get(ids["req-1"]).status == "canceled"  # type: ignore[union-attr]
    assert [line["custom_id"] for line in _lines(api, expired["output_file_id"])] == ["req-0"]
    assert {line["error"]["code"] for line in _lines(api, expired["error_file_id"])} == {"batch_expired"}


def test_list_and_unknown_ids(api: TestClient) -> None:
    first = _create(api, moderation_lines(1))
    second = _create(api, moderation_lines(1))
    page = api.get("/v1/batches", params={"limit": 1}).json()
    assert [item["id"] for item in page["data"]] == [second["id"]]
    assert page["has_more"] is True
    rest = api.get("/v1/batches", params={"after": page["last_id"], "limit": 1}).json()
    assert rest["data"][0]["id"] == first["id"]
    assert api.get("/v1/batches/batch_nope").status_code == 404
    missing_file = api.post(
        "/v1/batches",
        json={"input_file_id": "file-nope", "endpoint": "/v1/moderations", "completion_window": "24h"},
    )
    assert missing_file.status_code == 404
    bad_window = api.post(
        "/v1/batches",
        json={"input_file_id": "file-nope", "endpoint": "/v1/moderations", "completion_window": "forever"},
    )
    assert bad_window.status_code == 400  # OpenAI answers a bad request with 400
    assert bad_window.json()["error"]["param"] == "completion_window"


def test_too_many_requests(make_client: Any) -> None:
    api = make_client(batch_max_requests="3")
    batch = _create(api, moderation_lines(4))
    assert batch["status"] == "failed"
    assert batch["errors"]["data"][0]["code"] == "too_many_requests"
