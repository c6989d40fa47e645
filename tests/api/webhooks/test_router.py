"""`POST /v1/jobs/{id}/webhooks/{event}/resend` and the delivery state `GET /v1/jobs/{id}` shows."""

from __future__ import annotations

from datetime import timedelta

import redis
from fastapi.testclient import TestClient

from shared.db import session_scope
from shared.db.models import WebhookDelivery, utcnow
from shared.webhooks import queue as wq
from shared.webhooks import record_event
from tests.utils.factories import add_jobs, webhook_job_row

URL = "https://hooks.example.com/textfleet"


def _job_with_delivery(database_url: str, status: str, **values: object) -> tuple[str, str]:
    job = webhook_job_row(URL, ["started", "completed"])
    job.status = "succeeded"
    with session_scope(database_url) as session:
        add_jobs(session, [job])
        row = record_event(session, job, "completed")
        assert row is not None
        row.status = status
        for name, value in values.items():
            setattr(row, name, value)
    return job.id, row.id


def test_a_failed_delivery_is_re_sent_under_its_id(
    api: TestClient, database_url: str, redis_url: str
) -> None:
    job_id, delivery_id = _job_with_delivery(
        database_url, "failed", attempts=33, last_error="HTTP 503", last_status_code=503, next_attempt_at=None
    )
    shown = api.get(f"/v1/jobs/{job_id}").json()["webhook_deliveries"]
    assert shown == [
        {
            "id": delivery_id,
            "event": "completed",
            "status": "failed",
            "attempts": 33,
            "last_status_code": 503,
            "last_error": "HTTP 503",
            "next_attempt_at": None,
            "delivered_at": None,
        }
    ]

    response = api.post(f"/v1/jobs/{job_id}/webhooks/completed/resend")

    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["id"], body["status"], body["attempts"], body["last_error"]) == (
        delivery_id,
        "pending",
        0,
        "HTTP 503",
    )
    assert body["next_attempt_at"] is not None
    with session_scope(database_url) as session:
        row = session.get(WebhookDelivery, delivery_id)
        assert row is not None and row.status == "pending" and row.resent_at is not None
        assert abs((row.resent_at - utcnow()).total_seconds()) < 10
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.zscore(wq.DUE_KEY, delivery_id) is not None  # queued now
    finally:
        client.close()
    shown = api.get(f"/v1/jobs/{job_id}").json()["webhook_deliveries"][0]
    assert (shown["status"], shown["attempts"]) == ("pending", 0) and shown["next_attempt_at"] is not None

    again = api.post(f"/v1/jobs/{job_id}/webhooks/completed/resend")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    assert "still being retried" in again.json()["error"]["message"]


def test_resend_refusals_name_the_problem(api: TestClient, database_url: str) -> None:
    job_id, _ = _job_with_delivery(database_url, "delivered", delivered_at=utcnow() - timedelta(minutes=1))

    delivered = api.post(f"/v1/jobs/{job_id}/webhooks/completed/resend")
    assert delivered.status_code == 409 and "was delivered" in delivered.json()["error"]["message"]

    no_started = api.post(f"/v1/jobs/{job_id}/webhooks/started/resend")
    assert no_started.status_code == 404
    assert "no 'started' webhook delivery" in no_started.json()["error"]["message"]

    unknown_event = api.post(f"/v1/jobs/{job_id}/webhooks/finished/resend")
    assert unknown_event.status_code == 422
    assert "unknown webhook event 'finished'" in unknown_event.json()["error"]["message"]

    missing = api.post("/v1/jobs/01JNOSUCHJOB0000000000000/webhooks/completed/resend")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "job_not_found"
