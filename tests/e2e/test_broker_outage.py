"""While Redis is down the API refuses submissions cleanly and keeps serving reads from the database.

Real parts: a Redis server of the test's own (killed and restarted), PostgreSQL or SQLite, the API
process. Submissions answer `503` with `Retry-After` and leave no row behind; reading a job, listing
jobs and waiting on a job keep answering from the database; `/readyz` names Redis; once Redis is back
submissions are accepted again without any restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.utils.fleets import running_fleet
from textfleet.chaos.fleet import Fleet

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

BODY = {"task": "sentiment", "input": {"text": "the broker is away"}}


@pytest.fixture(params=["postgresql", "sqlite"])
def api_fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fleet]:
    with running_fleet(request.param, tmp_path, env={"TEXTFLEET_LOG_FORMAT": "json"}) as fleet:
        yield fleet


def test_api_during_and_after_a_redis_outage(api_fleet: Fleet) -> None:
    with httpx.Client(base_url=api_fleet.api_url, timeout=30) as http:
        accepted = http.post("/v1/jobs", json=BODY)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["id"]

        api_fleet.kill_redis()

        refused = http.post("/v1/jobs", json=BODY)
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["retry-after"]) > 0
        assert refused.json()["error"]["code"]
        bulk = http.post("/v1/jobs/batch", json={"jobs": [BODY, BODY]})
        assert bulk.status_code == 503, bulk.text

        listed = http.get("/v1/jobs")
        assert listed.status_code == 200, listed.text
        assert [item["id"] for item in listed.json()["items"]] == [job_id], "a refused job left a row"
        got = http.get(f"/v1/jobs/{job_id}")
        assert got.status_code == 200 and got.json()["status"] == "queued"
        waited = http.get(f"/v1/jobs/{job_id}", params={"wait": 1})
        assert waited.status_code == 200, waited.text
        assert waited.json()["status"] == "queued"

        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert "redis" in ready.text

        api_fleet.start_redis()
        again = http.post("/v1/jobs", json=BODY)
        assert again.status_code == 202, again.text
        assert http.get("/readyz").status_code == 200
        ids = {item["id"] for item in http.get("/v1/jobs").json()["items"]}
        assert ids == {job_id, again.json()["id"]}
