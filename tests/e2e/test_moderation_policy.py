"""Moderation policy over HTTP on the real stack: `params.categories`, `params.thresholds` and
`params.model` (an unknown custom model fails the job with `unknown_model`; bad params are a 422)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shared.schemas import ModerationResult
from tests.utils.jobs import run_job

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

THREAT = "I am going to find you and kill you, you worthless idiot."


def _run(client: httpx.Client, params: dict[str, Any], text: str = THREAT) -> dict[str, Any]:
    return run_job(client, {"task": "moderate", "input": {"text": text}, "params": params})


def test_results_carry_scores_and_applied_thresholds(client: httpx.Client) -> None:
    job = _run(client, {})
    assert job["status"] == "succeeded", job
    result = ModerationResult.model_validate(job["result"])
    assert result.thresholds is not None
    assert set(result.thresholds) == set(result.category_scores)
    assert len(result.category_scores) == 13
    for name, flagged in result.categories.items():
        assert flagged is (result.category_scores[name] >= result.thresholds[name])


def test_categories_and_thresholds_apply(client: httpx.Client) -> None:
    job = _run(
        client, {"categories": ["harassment", "sexual"], "thresholds": {"harassment": 1.0, "sexual": 1.0}}
    )
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert set(result["category_scores"]) == {"harassment", "sexual"}
    assert result["thresholds"] == {"harassment": 1.0, "sexual": 1.0}
    assert result["flagged"] is False  # a score of exactly 1.0 is not expected from calibrated heads
    strict = _run(client, {"categories": ["sexual"], "thresholds": {"sexual": 0.0}}, text="have a nice day")
    assert strict["result"]["flagged"] is True


def test_unknown_model_fails_the_job_clearly(client: httpx.Client) -> None:
    job = _run(client, {"model": "no-such-model"})
    assert job["status"] == "failed"
    assert job["error"]["code"] == "unknown_model"
    assert "no-such-model" in job["error"]["message"]


@pytest.mark.parametrize(
    "params",
    [{"categories": ["sexy"]}, {"thresholds": {"hate": 2}}, {"model": "Not A Name"}, {"colour": "red"}],
)
def test_bad_policy_params_are_422(client: httpx.Client, params: dict[str, Any]) -> None:
    response = client.post("/v1/jobs", json={"task": "moderate", "input": {"text": "x"}, "params": params})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"]
