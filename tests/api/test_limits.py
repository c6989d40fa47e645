"""An app enforces the request limits of the settings it was created with (`create_app(settings)`),
not the process-wide ones: a body within the global limits but over the app's is a 422 naming the
field and the app's limit, and nothing is stored or enqueued."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from shared.settings import get_settings
from tests.api.conftest import Broker, Rows
from tests.utils.factories import job_payload

TEXT = "twenty characters..."  # 20 characters: over the app's 10, far under the global 32,000

SHORT = {"text": "short"}
OVER_THE_APPS_LIMITS: list[tuple[dict[str, Any], str, str]] = [
    (job_payload("sentiment", input={"text": TEXT}), "input.text", "20 characters long; the maximum is 10"),
    (job_payload("generate", params={"max_tokens": 9}), "params.max_tokens", "the maximum is 8"),
    (job_payload("risk", input=SHORT, params={"timeout_s": 61}), "params.timeout_s", "the maximum is 60"),
    (job_payload("moderate", input=SHORT, params={"ttl_s": 121}), "params.ttl_s", "the maximum is 120"),
]


def _small_limits() -> Any:
    return get_settings().model_copy(
        update={
            "max_input_chars": 10,
            "max_tokens_limit": 8,
            "default_max_tokens": 8,
            "max_timeout_s": 60,
            "default_timeout_s": 60,
            "max_ttl_s": 120,
        }
    )


@pytest.mark.usefixtures("clean")
@pytest.mark.parametrize(("body", "field", "message"), OVER_THE_APPS_LIMITS)
def test_the_apps_own_limits_are_enforced(
    body: dict[str, Any], field: str, message: str, rows: Rows, broker: Broker
) -> None:
    with TestClient(create_app(_small_limits())) as small:
        response = small.post("/v1/jobs", json=body)
        batch = small.post("/v1/jobs/batch", json={"jobs": [body]})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == field and message in error["message"], error
    assert batch.status_code == 422 and batch.json()["error"]["field"] == f"jobs.0.{field}"
    assert rows.count() == 0 and broker.jobs() == {}
    # The process-wide settings allow the same body: an app built with them accepts it.
    with TestClient(create_app()) as default:
        assert default.post("/v1/jobs", json=body).status_code == 202
    assert rows.count() == 1


@pytest.mark.usefixtures("clean")
def test_an_app_with_larger_limits_accepts_what_the_global_settings_refuse(rows: Rows) -> None:
    body = job_payload("sentiment", input={"text": "x" * (get_settings().max_input_chars + 1)})
    roomy = get_settings().model_copy(update={"max_input_chars": get_settings().max_input_chars + 1})
    with TestClient(create_app(roomy)) as client:
        assert client.post("/v1/jobs", json=body).status_code == 202
    with TestClient(create_app()) as default:
        assert default.post("/v1/jobs", json=body).status_code == 422
    assert rows.count() == 1
