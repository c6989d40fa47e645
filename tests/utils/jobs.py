"""Submitting a job over HTTP and waiting for its end, for end-to-end tests."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shared.schemas import JobOut

__all__ = ["run_job"]


def run_job(client: httpx.Client, body: dict[str, Any], rounds: int = 5) -> dict[str, Any]:
    """POST `body` to /v1/jobs and long-poll until the job ends (at most `rounds` polls of 60 s); the job,
    checked against the API's own response model."""
    created = client.post("/v1/jobs", json=body)
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    for _ in range(rounds):
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}", params={"wait": 60}).json()
        if job["status"] not in ("queued", "running"):
            JobOut.model_validate(job)
            return job
    pytest.fail(f"job {job_id} not finished")
