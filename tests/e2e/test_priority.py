"""Priorities through the real queue: a high-priority job overtakes a backlog of low-priority ones."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

BACKLOG = 1000


def test_high_priority_job_starts_within_a_few_jobs(client: httpx.Client) -> None:
    low = [
        {"task": "sentiment", "input": {"text": f"backlog item {i}"}, "priority": 0} for i in range(BACKLOG)
    ]
    created = client.post("/v1/jobs/batch", json={"jobs": low})
    assert created.status_code == 202, created.text
    low_ids = [item["id"] for item in created.json()["items"]]
    backlog = set(low_ids)
    assert len(low_ids) == BACKLOG

    high = client.post(
        "/v1/jobs", json={"task": "sentiment", "input": {"text": "urgent!"}, "priority": 9}
    ).json()
    done = client.get(f"/v1/jobs/{high['id']}", params={"wait": 60}).json()
    assert done["status"] == "succeeded"
    submitted_at = datetime.fromisoformat(high["created_at"])
    started_at = datetime.fromisoformat(done["started_at"])

    # Every low-priority job that started after the high one was submitted but before it started
    # overtook it. The worker holds `concurrency` jobs at once; those already running don't count.
    overtaken = 0
    cursor = None
    while True:
        page = client.get(
            "/v1/jobs", params={"task": "sentiment", "limit": 200, **({"cursor": cursor} if cursor else {})}
        )
        body = page.json()
        for job in body["items"]:
            if job["id"] in backlog and job["started_at"]:
                began = datetime.fromisoformat(job["started_at"])
                if submitted_at < began < started_at:
                    overtaken += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert overtaken <= 10, f"{overtaken} low-priority jobs started ahead of the high-priority one"
    remaining = client.get("/v1/jobs", params={"task": "sentiment", "status": "queued", "limit": 1}).json()
    assert remaining["items"], "the backlog should still be queued when the urgent job finished"

    # Let the backlog drain so later tests see an idle worker.
    last = client.get(f"/v1/jobs/{low_ids[-1]}", params={"wait": 60}).json()
    for _ in range(8):
        if last["status"] not in ("queued", "running"):
            break
        last = client.get(f"/v1/jobs/{low_ids[-1]}", params={"wait": 60}).json()
