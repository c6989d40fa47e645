"""Guardrails on generation over HTTP on the real stack: `params.moderate_input` fails a flagged prompt
with `content_flagged` before any generation; `params.moderate_output` attaches the output's
moderation; both run as child `moderate` jobs on the classify queue of the same fleet."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shared.schemas import GenerateResult
from tests.utils.jobs import run_job

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

INSULT = "You are a worthless idiot and a pathetic moron, everyone hates you, you stupid loser."


def _children(client: httpx.Client, parent: str) -> list[dict[str, Any]]:
    jobs = client.get("/v1/jobs", params={"task": "moderate", "limit": 100}).json()["items"]
    return [job for job in jobs if job["metadata"].get("guardrail_of") == parent]


def test_a_flagged_prompt_fails_with_content_flagged(client: httpx.Client) -> None:
    job = run_job(
        client, {"task": "generate", "input": {"prompt": INSULT}, "params": {"moderate_input": True}}
    )
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "content_flagged"
    assert "harassment" in job["error"]["message"]
    assert job["usage"] is None, "nothing was generated"
    [child] = _children(client, job["id"])
    assert child["status"] == "succeeded" and child["result"]["flagged"] is True


def test_output_moderation_is_attached_to_the_result(client: httpx.Client) -> None:
    body = {
        "task": "generate",
        "input": {"prompt": "Say something kind about gardens."},
        "params": {"max_tokens": 16, "temperature": 0, "moderate_input": True, "moderate_output": True},
    }
    job = run_job(client, body)
    assert job["status"] == "succeeded", job
    result = GenerateResult.model_validate(job["result"])
    assert result.moderation is not None
    assert set(result.moderation.category_scores) >= {"harassment", "hate", "violence"}
    assert {child["metadata"]["guardrail"] for child in _children(client, job["id"])} == {"input", "output"}


def test_guardrail_params_are_checked_at_submission(client: httpx.Client) -> None:
    response = client.post(
        "/v1/jobs",
        json={"task": "generate", "input": {"prompt": "hi"}, "params": {"moderate_output": "maybe"}},
    )
    assert response.status_code == 422
    assert "params.moderate_output" in response.text
