"""`GET /v1/usage` through the real API (auth on) and the real worker path (`workers.execution.execute`
with fake engines: claim, run, the batched store, `shared.lifecycle`), on PostgreSQL and SQLite.

The report's totals equal the sums over the tenant's own job rows, another tenant's jobs never count,
the `textfleet_usage_*` counters move by the same amounts, and erasing inputs and results (what a
retention purge does) changes nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import func, select, update

from shared.constants import TaskName
from shared.db.models import Job
from shared.db.session import session_scope
from shared.settings import get_settings
from shared.tasks import TASKS
from shared.tenancy.principal import Scope
from tests.api.conftest import MakeClient
from tests.utils.fakes import FakeClassifiers, FakeEngine
from tests.utils.tenancy import READ_WRITE, auth_headers, make_key
from workers.execution import execute
from workers.runtime import WorkerRuntime

pytestmark = pytest.mark.timeout(120)

FIGURES = ("prompt_tokens", "completion_tokens", "classified_texts")


@pytest.fixture
def worker(make_client: MakeClient) -> Iterator[WorkerRuntime]:
    """A worker runtime with fake engines on the test's database and Redis (settings as the app's)."""
    settings = get_settings()
    rt = WorkerRuntime(
        settings=settings,
        hostname="usage-worker",
        redis=redis.Redis.from_url(settings.redis_url),
        generation=FakeEngine(),
        classifiers=FakeClassifiers(),
    )
    yield rt
    rt.close()


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _counters(tenant: str) -> dict[str, float]:
    """The tenant's `textfleet_usage_*` counters, summed over tasks (and statuses)."""
    out = {"jobs": 0.0, "run_seconds": 0.0, **dict.fromkeys(FIGURES, 0.0)}
    for spec in TASKS:
        for status in ("succeeded", "failed", "canceled", "expired"):
            out["jobs"] += _metric("textfleet_usage_jobs_total", tenant=tenant, task=spec.name, status=status)
        out["run_seconds"] += _metric("textfleet_usage_run_seconds_total", tenant=tenant, task=spec.name)
        for figure in FIGURES:
            out[figure] += _metric(f"textfleet_usage_{figure}_total", tenant=tenant, task=spec.name)
    return out


def _submit(api: TestClient, key: str, task: str, input_: dict[str, Any], **extra: Any) -> str:
    response = api.post("/v1/jobs", json={"task": task, "input": input_, **extra}, headers=auth_headers(key))
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _run_queued(rt: WorkerRuntime, database_url: str) -> int:
    """Run every queued job through the worker's own path; how many ran."""
    with session_scope(database_url) as session:
        queued = session.execute(
            select(Job.id, Job.task).where(Job.status == "queued").order_by(Job.id)
        ).all()
    for job_id, task in queued:
        execute(job_id, TaskName(task), rt)
    return len(queued)


def _sums(database_url: str, tenant: str) -> dict[str, Any]:
    """The usage figures summed in Python over the tenant's job rows (the reference)."""
    with session_scope(database_url) as session:
        jobs = session.scalars(select(Job).where(Job.tenant_id == tenant)).all()
        out: dict[str, Any] = {"jobs": 0, "jobs_by_status": {}, "jobs_by_task": {}, "run_seconds": 0.0}
        out.update(dict.fromkeys(FIGURES, 0))
        for job in jobs:
            assert job.finished_at is not None, f"{job.id} is {job.status}"
            out["jobs"] += 1
            out["jobs_by_status"][job.status] = out["jobs_by_status"].get(job.status, 0) + 1
            out["jobs_by_task"][job.task] = out["jobs_by_task"].get(job.task, 0) + 1
            for figure in FIGURES:
                out[figure] += getattr(job, figure) or 0
            if job.started_at is not None:
                out["run_seconds"] += (job.finished_at - job.started_at).total_seconds()
        return out


def _usage(api: TestClient, key: str, **params: str) -> dict[str, Any]:
    response = api.get("/v1/usage", params=params, headers=auth_headers(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    """A report without its period (`to` defaults to now: it differs between two requests)."""
    return {k: v for k, v in report.items() if k not in ("from", "to")}


def _same(report: dict[str, Any], expected: dict[str, Any]) -> None:
    assert {k: v for k, v in report.items() if k != "run_seconds"} == {
        k: v for k, v in expected.items() if k != "run_seconds"
    }
    assert report["run_seconds"] == pytest.approx(expected["run_seconds"], abs=1e-3 * max(1, report["jobs"]))


def test_usage_totals_equal_the_sum_over_the_tenants_jobs(
    make_client: MakeClient, worker: WorkerRuntime, database_url: str
) -> None:
    api = make_client(auth_enabled="true")
    acme = make_key(database_url, "acme", scopes=READ_WRITE)
    globex = make_key(database_url, "globex", scopes=READ_WRITE)
    admin = make_key(database_url, "ops", scopes=[Scope.ADMIN])
    before = {tenant: _counters(tenant) for tenant in ("acme", "globex")}

    _submit(api, acme, "generate", {"prompt": "one two three four"}, params={"max_tokens": 3})
    _submit(api, acme, "generate", {"prompt": "alpha beta"})
    _submit(api, acme, "generate", {"prompt": "FAIL now"})  # fails: no tokens
    _submit(api, acme, "summarize", {"text": "a short text to summarize"})
    for text in ("good", "great", "fine"):
        _submit(api, acme, "sentiment", {"text": text})
    _submit(api, acme, "moderate", {"text": "a text to moderate"})
    _submit(api, acme, "risk", {"text": "FAIL the classifier"})  # fails: classified nothing
    _submit(api, acme, "entities", {"text": "Ada met Charles"}, params={"ttl_s": 0.01})  # expires
    canceled = _submit(api, acme, "sentiment", {"text": "never mind"})
    assert api.post(f"/v1/jobs/{canceled}/cancel", headers=auth_headers(acme)).status_code == 200
    _submit(api, globex, "generate", {"prompt": "x y z w v"})
    _submit(api, globex, "moderate", {"text": "theirs"})
    with session_scope(database_url) as session:
        counts = session.execute(select(Job.tenant_id, func.count()).group_by(Job.tenant_id)).all()
        owners = {tenant: int(n) for tenant, n in counts}
    assert owners == {"acme": 11, "globex": 2}  # job creation records the caller's tenant
    time.sleep(0.05)  # past the entities job's ttl_s
    assert _run_queued(worker, database_url) == 12

    expected = _sums(database_url, "acme")
    # the fixture is what it means to be: every kind of ending and every figure is there
    assert expected["jobs"] == 11
    assert expected["jobs_by_status"] == {"succeeded": 7, "failed": 2, "expired": 1, "canceled": 1}
    assert expected["classified_texts"] == 4  # three sentiment and one moderate job succeeded
    assert expected["prompt_tokens"] > 0 and expected["completion_tokens"] > 0

    report = _usage(api, acme, group_by="task")
    assert report["tenant"] == "acme" and report["group_by"] == "task"
    _same(report["total"], expected)
    assert [g["key"] for g in report["groups"]] == sorted(expected["jobs_by_task"])
    for group in report["groups"]:
        assert group["jobs_by_task"] == {group["key"]: group["jobs"]}
    assert sum(g["jobs"] for g in report["groups"]) == report["total"]["jobs"]
    for figure in FIGURES:
        assert sum(g[figure] for g in report["groups"]) == report["total"][figure]

    by_day = _usage(api, acme, group_by="day")
    _same(by_day["total"], expected)
    assert [len(g["key"]) for g in by_day["groups"]] == [10] * len(by_day["groups"])  # YYYY-MM-DD
    assert sum(g["jobs"] for g in by_day["groups"]) == expected["jobs"]

    theirs = _usage(api, globex)
    _same(theirs["total"], _sums(database_url, "globex"))
    assert theirs["total"]["jobs"] == 2  # acme's eleven never count for globex, nor globex's two for acme

    # the counters moved by the same amounts, per tenant
    for tenant, reference in (("acme", expected), ("globex", _sums(database_url, "globex"))):
        moved = {k: v - before[tenant][k] for k, v in _counters(tenant).items()}
        assert moved["jobs"] == reference["jobs"]
        for figure in FIGURES:
            assert moved[figure] == reference[figure], figure
        assert moved["run_seconds"] == pytest.approx(reference["run_seconds"], abs=1e-6)

    # a retention purge erases inputs and results: usage is read from the accounting columns only
    with session_scope(database_url) as session:
        session.execute(update(Job).values(input={}, params={}, result=None, error=None))
    assert _figures(_usage(api, acme, group_by="task")) == _figures(report)

    # an admin reads any tenant's usage; a tenant's key only its own
    assert _figures(_usage(api, admin, tenant="acme", group_by="task")) == _figures(report)
    denied = api.get("/v1/usage", params={"tenant": "acme"}, headers=auth_headers(globex))
    assert denied.status_code == 403, denied.text
    assert _figures(_usage(api, acme, tenant="acme", group_by="task")) == _figures(report)


def test_the_period_is_from_inclusive_to_exclusive_on_finished_at(
    make_client: MakeClient, worker: WorkerRuntime, database_url: str
) -> None:
    api = make_client(auth_enabled="true")
    key = make_key(database_url, "initech", scopes=READ_WRITE)
    _submit(api, key, "sentiment", {"text": "fine"})
    _run_queued(worker, database_url)
    with session_scope(database_url) as session:
        ended = session.scalars(select(Job.finished_at).where(Job.tenant_id == "initech")).all()
    assert len(ended) == 1, "job creation records the caller's tenant"
    finished = ended[0]
    assert finished is not None
    stamp = finished.isoformat()
    assert _usage(api, key, **{"from": stamp})["total"]["jobs"] == 1
    assert _usage(api, key, to=stamp)["total"]["jobs"] == 0
    naive = finished.replace(tzinfo=None).isoformat()  # without an offset: UTC
    assert _usage(api, key, **{"from": naive})["total"]["jobs"] == 1
    assert _usage(api, key, **{"from": "2000-01-01T00:00:00Z", "to": "2000-06-01T00:00:00Z"})["total"] == {
        "jobs": 0,
        "jobs_by_status": {},
        "jobs_by_task": {},
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "classified_texts": 0,
        "run_seconds": 0.0,
    }


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"from": "yesterday"}, "from", "datetime"),
        ({"to": "2026-13-01T00:00:00Z"}, "to", "datetime"),
        ({"group_by": "week"}, "group_by", "'task' or 'day'"),
        ({"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, "to", "after `from`"),
        ({"from": "2026-12-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, "to", "after `from`"),
        ({"from": "2024-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to", "366 days"),
        ({"from": "0001-01-01T00:00:00+01:00"}, "from", "out of range"),
        ({"to": "0001-01-02T00:00:00Z"}, "to", "give `from`"),
        ({"tenant": "no spaces allowed"}, "tenant", "pattern"),
        ({"to": "0.5"}, "to", "ISO 8601"),
        ({"from": "1700000000"}, "from", "not a number"),
    ],
)
def test_bad_periods_and_parameters_are_clear_422s(
    make_client: MakeClient, database_url: str, params: dict[str, str], field: str, words: str
) -> None:
    api = make_client(auth_enabled="true")
    key = make_key(database_url, "acme", scopes=[Scope.JOBS_READ])
    response = api.get("/v1/usage", params=params, headers=auth_headers(key))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == field
    assert words in error["message"]


def test_usage_needs_a_key_with_read_scope(make_client: MakeClient, database_url: str) -> None:
    api = make_client(auth_enabled="true")
    assert api.get("/v1/usage").status_code == 401
    writer = make_key(database_url, "acme", scopes=[Scope.JOBS_WRITE])
    assert api.get("/v1/usage", headers=auth_headers(writer)).status_code == 403
