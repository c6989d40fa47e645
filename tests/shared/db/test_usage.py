"""`shared.db.usage.usage_cells`: a tenant's usage summed in SQL, on PostgreSQL and SQLite: its own
ended jobs only, `[start, end)` on `finished_at`, by task and status, and by UTC day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from ulid import ULID

from shared.db import session_scope
from shared.db.usage import UsageCell, usage_cells
from tests.utils.factories import add_jobs, job_row

pytestmark = pytest.mark.timeout(60)

T0 = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)


def _tenant() -> str:
    return f"usage-{str(ULID()).lower()}"


def _job(
    tenant: str, task: str, status: str, finished: datetime | None, run_s: float | None, **cols: Any
) -> Any:
    job = job_row(task, created_at=T0 - timedelta(hours=1))
    job.tenant_id = tenant
    job.status = status
    job.finished_at = finished
    job.started_at = (
        finished - timedelta(seconds=run_s) if finished is not None and run_s is not None else None
    )
    for name, value in cols.items():
        setattr(job, name, value)
    return job


def _cells(
    database_url: str, tenant: str, start: datetime, end: datetime, by_day: bool = False
) -> list[UsageCell]:
    with session_scope(database_url) as session:
        return usage_cells(session, tenant, start, end, by_day=by_day)


def test_sums_per_task_and_status_of_the_tenants_jobs_in_the_period(database_url: str) -> None:
    tenant, other = _tenant(), _tenant()
    jobs = [
        _job(tenant, "generate", "succeeded", T0, 1.5, prompt_tokens=10, completion_tokens=4),
        _job(
            tenant,
            "generate",
            "succeeded",
            T0 + timedelta(minutes=5),
            2.25,
            prompt_tokens=6,
            completion_tokens=2,
        ),
        _job(tenant, "generate", "failed", T0 + timedelta(minutes=6), 0.5),
        _job(tenant, "moderate", "succeeded", T0 + timedelta(minutes=7), 0.125, classified_texts=3),
        _job(tenant, "moderate", "expired", T0 + timedelta(minutes=8), None),
        _job(tenant, "sentiment", "canceled", T0 + timedelta(minutes=9), None),
        # not counted: the end of the period is exclusive, before the start, not ended, another tenant
        _job(tenant, "generate", "succeeded", T0 + timedelta(hours=2), 1.0, prompt_tokens=1000),
        _job(tenant, "generate", "succeeded", T0 - timedelta(microseconds=1), 1.0, prompt_tokens=1000),
        _job(tenant, "generate", "running", None, None),
        _job(other, "generate", "succeeded", T0 + timedelta(minutes=1), 9.0, prompt_tokens=1000),
    ]
    with session_scope(database_url) as session:
        add_jobs(session, jobs)

    cells = _cells(database_url, tenant, T0, T0 + timedelta(hours=2))

    assert [(c.task, c.status, c.jobs) for c in cells] == [
        ("generate", "failed", 1),
        ("generate", "succeeded", 2),
        ("moderate", "expired", 1),
        ("moderate", "succeeded", 1),
        ("sentiment", "canceled", 1),
    ]
    by_key = {(c.task, c.status): c for c in cells}
    succeeded = by_key["generate", "succeeded"]
    assert (succeeded.prompt_tokens, succeeded.completion_tokens, succeeded.classified_texts) == (16, 6, 0)
    assert succeeded.run_seconds == pytest.approx(3.75, abs=1e-3)
    assert by_key["generate", "failed"].run_seconds == pytest.approx(0.5, abs=1e-3)
    assert by_key["moderate", "succeeded"].classified_texts == 3
    assert by_key["moderate", "expired"].run_seconds == 0.0
    assert all(c.day is None for c in cells)
    assert _cells(database_url, _tenant(), T0, T0 + timedelta(hours=2)) == []


def test_days_are_utc_calendar_days_of_finished_at(database_url: str) -> None:
    tenant = _tenant()
    plus_two = timezone(timedelta(hours=2))
    midnight = datetime(2026, 12, 1, tzinfo=UTC)
    jobs = [
        _job(tenant, "risk", "succeeded", midnight - timedelta(milliseconds=1), 1.0, classified_texts=1),
        _job(tenant, "risk", "succeeded", midnight, 1.0, classified_texts=1),
        # 01:30 at +02:00 is 23:30 UTC of the day before
        _job(
            tenant,
            "risk",
            "succeeded",
            datetime(2026, 12, 2, 1, 30, tzinfo=plus_two),
            1.0,
            classified_texts=1,
        ),
        _job(
            tenant,
            "summarize",
            "succeeded",
            midnight + timedelta(hours=25),
            2.0,
            prompt_tokens=5,
            completion_tokens=1,
        ),
    ]
    with session_scope(database_url) as session:
        add_jobs(session, jobs)

    cells = _cells(
        database_url, tenant, midnight - timedelta(days=1), midnight + timedelta(days=2), by_day=True
    )

    assert [(c.day, c.task, c.jobs, c.classified_texts) for c in cells] == [
        ("2026-11-30", "risk", 1, 1),
        ("2026-12-01", "risk", 2, 2),
        ("2026-12-02", "summarize", 1, 0),
    ]
    assert cells[1].run_seconds == pytest.approx(2.0, abs=1e-3)
    assert (cells[2].prompt_tokens, cells[2].completion_tokens) == (5, 1)
