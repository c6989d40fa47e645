"""Usage accounting on a real fleet: the API and a real classify worker (encoder and heads) as
processes, keys required, on PostgreSQL and SQLite.

Two tenants submit classifier jobs (one of them an OpenAI moderation with a list input: one text per
job, each counted); `GET /v1/usage` equals the sums over each tenant's own job rows, and the
`textfleet_usage_*` counters the processes serve (`/metrics` of the API and of the worker's side
port, summed as Prometheus would) moved by the same amounts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from shared.db.models import Job
from shared.db.session import session_scope
from shared.tenancy.principal import Scope
from tests.utils.fleets import running_fleet
from tests.utils.metrics import Samples, parse_metrics
from tests.utils.tenancy import READ_WRITE, auth_headers, make_key
from textfleet.chaos.fleet import Fleet
from textfleet.dev import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.models, pytest.mark.timeout(900)]


@pytest.fixture(params=["postgresql", "sqlite"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fleet]:
    env = {"TEXTFLEET_AUTH_ENABLED": "true", "TEXTFLEET_WORKER_HTTP_PORT": str(free_port())}
    with running_fleet(request.param, tmp_path, env=env, workers=("classify",)) as fleet:
        yield fleet


def _wait_terminal(http: httpx.Client, key: str, job_ids: list[str], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    for job_id in job_ids:
        while True:
            job = http.get(f"/v1/jobs/{job_id}", params={"wait": 10}, headers=auth_headers(key)).json()
            if job["status"] not in ("queued", "running"):
                break
            assert time.monotonic() < deadline, f"{job_id} still {job['status']}"


def _scrape(fleet: Fleet, key: str) -> Samples:
    """The usage counters of every process of the fleet, summed per series."""
    total: Samples = {}
    urls = [f"{fleet.api_url}/metrics", f"http://127.0.0.1:{fleet.env['TEXTFLEET_WORKER_HTTP_PORT']}/metrics"]
    for url in urls:
        response = httpx.get(url, headers=auth_headers(key), timeout=30)
        assert response.status_code == 200, (url, response.status_code)
        for series, value in parse_metrics(response.text).items():
            if series[0].startswith("textfleet_usage_") and series[0].endswith("_total"):
                total[series] = total.get(series, 0.0) + value
    return total


def _counted(samples: Samples, tenant: str, name: str) -> float:
    return sum(v for (n, labels), v in samples.items() if n == name and ("tenant", tenant) in labels)


def _sums(database_url: str, tenant: str) -> dict[str, Any]:
    with session_scope(database_url) as session:
        jobs = session.scalars(select(Job).where(Job.tenant_id == tenant)).all()
        by_status: dict[str, int] = {}
        for job in jobs:
            by_status[job.status] = by_status.get(job.status, 0) + 1
        return {
            "jobs": len(jobs),
            "jobs_by_status": by_status,
            "classified_texts": sum(job.classified_texts or 0 for job in jobs),
            "run_seconds": sum(
                (job.finished_at - job.started_at).total_seconds()
                for job in jobs
                if job.started_at is not None and job.finished_at is not None
            ),
        }


def test_usage_of_a_real_fleet_equals_the_sum_over_each_tenants_jobs(fleet: Fleet) -> None:
    database_url = fleet.env["TEXTFLEET_DATABASE_URL"]
    acme = make_key(database_url, "acme", scopes=READ_WRITE)
    globex = make_key(database_url, "globex", scopes=READ_WRITE)
    admin = make_key(database_url, "ops", scopes=[Scope.ADMIN])
    with httpx.Client(base_url=fleet.api_url, timeout=120) as http:
        ids: dict[str, list[str]] = {"acme": [], "globex": []}
        for tenant, key, texts in (("acme", acme, ["good", "bad", "fine"]), ("globex", globex, ["meh"])):
            for text in texts:
                body = {"task": "sentiment", "input": {"text": text}}
                response = http.post("/v1/jobs", json=body, headers=auth_headers(key))
                assert response.status_code == 202, response.text
                ids[tenant].append(response.json()["id"])
        expiring = {"task": "risk", "input": {"text": "wire the money"}, "params": {"ttl_s": 0.001}}
        response = http.post("/v1/jobs", json=expiring, headers=auth_headers(acme))
        ids["acme"].append(response.json()["id"])
        moderation = http.post(
            "/v1/moderations",
            json={"input": ["I love sunny days", "what a lovely walk", "see you tomorrow"]},
            headers=auth_headers(acme),
        )
        assert moderation.status_code == 200, moderation.text
        assert len(moderation.json()["results"]) == 3
        for tenant, key in (("acme", acme), ("globex", globex)):
            _wait_terminal(http, key, ids[tenant])

        samples = _scrape(fleet, admin)
        for tenant, key in (("acme", acme), ("globex", globex)):
            expected = _sums(database_url, tenant)
            report = http.get("/v1/usage", headers=auth_headers(key)).json()["total"]
            assert report["jobs"] == expected["jobs"]
            assert report["jobs_by_status"] == expected["jobs_by_status"]
            assert report["classified_texts"] == expected["classified_texts"]
            assert report["run_seconds"] == pytest.approx(
                expected["run_seconds"], abs=1e-3 * expected["jobs"]
            )
            assert _counted(samples, tenant, "textfleet_usage_jobs_total") == expected["jobs"]
            assert (
                _counted(samples, tenant, "textfleet_usage_classified_texts_total")
                == expected["classified_texts"]
            )
            assert _counted(samples, tenant, "textfleet_usage_run_seconds_total") == pytest.approx(
                expected["run_seconds"], abs=1e-6 * max(1, expected["jobs"])
            )
        acme_total = _sums(database_url, "acme")
        # three sentiment jobs, three moderation texts, one expired risk job
        assert acme_total["jobs"] == 7 and acme_total["classified_texts"] == 6
        assert acme_total["jobs_by_status"] == {"succeeded": 6, "expired": 1}
        assert _sums(database_url, "globex")["jobs"] == 1
