"""A batch's `webhook` (textfleet's extension of `POST /v1/batches`): checked like a job's, stored on
the batch, and one `batch.<status>` delivery recorded when the batch ends (real Redis and databases;
the delivery itself is tested in tests/workers/test_batch_webhooks.py)."""

from __future__ import annotations

from typing import Any

import openai
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from shared.db.batch_models import Batch
from shared.db.models import WebhookDelivery
from shared.db.session import session_scope
from shared.webhooks import queue as wq
from tests.api.conftest import MakeClient
from tests.utils.batches import batch_job_ids, finish_batch_jobs, jsonl, moderation_lines
from tests.utils.webhooks import SECRET

HOOK = "https://hooks.example.com/batches"


def _post(api: TestClient, lines: list[dict[str, Any] | str], **extra: Any) -> Any:
    uploaded = api.post("/v1/files", files={"file": ("in.jsonl", jsonl(lines))}, data={"purpose": "batch"})
    assert uploaded.status_code == 200, uploaded.text
    body = {"input_file_id": uploaded.json()["id"], "endpoint": "/v1/moderations", **extra}
    return api.post("/v1/batches", json=body)


def _batches(database_url: str) -> int:
    with session_scope(database_url) as session:
        return int(session.scalar(select(func.count()).select_from(Batch)) or 0)


def _deliveries(database_url: str, batch_id: str) -> list[tuple[str, str, str]]:
    with session_scope(database_url) as session:
        rows = session.execute(
            select(WebhookDelivery.id, WebhookDelivery.event, WebhookDelivery.url).where(
                WebhookDelivery.batch_id == batch_id
            )
        ).all()
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


def test_a_webhook_needs_the_signing_secret(api: TestClient, database_url: str) -> None:
    before = _batches(database_url)
    response = _post(api, moderation_lines(1), webhook=HOOK)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "webhook" and "TEXTFLEET_WEBHOOK_SECRET" in error["message"]
    assert _batches(database_url) == before  # nothing written


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/x",
        "not a url",
        "https://user:password@hooks.example.com/x",
        "https://hooks.example.com/" + "a" * 2100,
    ],
)
def test_a_bad_webhook_url_is_refused(url: str, make_client: MakeClient, database_url: str) -> None:
    api = make_client(webhook_secret=SECRET)
    before = _batches(database_url)
    response = _post(api, moderation_lines(1), webhook=url)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "webhook"
    assert _batches(database_url) == before


def test_the_create_body_stays_strict(make_client: MakeClient) -> None:
    api = make_client(webhook_secret=SECRET)
    response = _post(api, moderation_lines(1), webhooks=HOOK)  # a typo is not ignored
    assert response.status_code == 400 and response.json()["error"]["param"] == "webhooks"


def test_a_completed_batch_records_one_event_however_often_it_is_read(
    make_client: MakeClient, database_url: str, redis_url: str
) -> None:
    api = make_client(webhook_secret=SECRET)
    response = _post(api, moderation_lines(3), webhook=HOOK)
    assert response.status_code == 200, response.text
    batch_id = response.json()["id"]
    with session_scope(database_url) as session:
        row = session.get(Batch, batch_id)
        assert row is not None and row.webhook == HOOK
    assert _deliveries(database_url, batch_id) == []
    finish_batch_jobs(database_url, list(batch_job_ids(database_url, batch_id).values()))
    for _ in range(3):
        assert api.get(f"/v1/batches/{batch_id}").json()["status"] == "completed"
    [(delivery_id, event, url)] = _deliveries(database_url, batch_id)
    assert (event, url) == ("completed", HOOK)
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.zscore(wq.DUE_KEY, delivery_id) is not None
    finally:
        client.close()


def test_a_batch_that_fails_validation_records_batch_failed(
    make_client: MakeClient, database_url: str
) -> None:
    api = make_client(webhook_secret=SECRET)
    response = _post(api, ["{not json"], webhook=HOOK)
    assert response.status_code == 200 and response.json()["status"] == "failed"
    [(_, event, url)] = _deliveries(database_url, response.json()["id"])
    assert (event, url) == ("failed", HOOK)


def test_a_failed_batch_event_can_be_re_sent(
    make_client: MakeClient, database_url: str, redis_url: str
) -> None:
    api = make_client(webhook_secret=SECRET)
    assert api.post("/v1/batches/batch_nope/webhook/resend").status_code == 404
    batch_id = _post(api, moderation_lines(1), webhook=HOOK).json()["id"]
    none_yet = api.post(f"/v1/batches/{batch_id}/webhook/resend")
    assert none_yet.status_code == 404 and none_yet.json()["error"]["code"] == "webhook_delivery_not_found"
    finish_batch_jobs(database_url, list(batch_job_ids(database_url, batch_id).values()))
    assert api.get(f"/v1/batches/{batch_id}").json()["status"] == "completed"
    [(delivery_id, _, _)] = _deliveries(database_url, batch_id)
    assert api.post(f"/v1/batches/{batch_id}/webhook/resend").status_code == 409  # still pending
    with session_scope(database_url) as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(status="failed", attempts=7, next_attempt_at=None)
        )
    client = redis.Redis.from_url(redis_url)
    try:
        client.zrem(wq.DUE_KEY, delivery_id)
        response = api.post(f"/v1/batches/{batch_id}/webhook/resend")
        assert response.status_code == 202, response.text
        assert (response.json()["id"], response.json()["status"], response.json()["attempts"]) == (
            delivery_id,
            "pending",
            0,
        )
        assert client.zscore(wq.DUE_KEY, delivery_id) is not None
    finally:
        client.close()


def test_the_official_client_passes_the_webhook_as_extra_body(
    make_client: MakeClient, database_url: str
) -> None:
    api = make_client(webhook_secret=SECRET)
    client = openai.OpenAI(
        base_url="http://testserver/v1", api_key="textfleet", http_client=api, max_retries=0
    )
    uploaded = client.files.create(file=("in.jsonl", jsonl(moderation_lines(1))), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/moderations",
        completion_window="24h",
        extra_body={"webhook": HOOK},
    )
    with session_scope(database_url) as session:
        row = session.get(Batch, batch.id)
        assert row is not None and row.webhook == HOOK
    with pytest.raises(openai.BadRequestError, match="webhook"):
        client.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/moderations",
            completion_window="24h",
            extra_body={"webhook": "ftp://hooks.example.com/x"},
        )
