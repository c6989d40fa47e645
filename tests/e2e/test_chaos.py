"""Chaos: no job lost, none finished twice, every webhook event delivered under one id, and no worker
process that dies by itself — through worker kills and Redis restarts (textfleet/chaos).

Real parts only: a Redis server the run starts itself without persistence (so a restart really loses
every message it held), PostgreSQL, the API, a generation worker with the real vLLM engine, two
classify workers, a webhook worker and a local receiver that checks every signature.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.utils.services import postgres_database
from textfleet.chaos.run import ChaosPlan, ChaosReport, run_chaos

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

#: Small engines, so the generation worker starts quickly on a CPU.
ENGINE_ENV = {
    "TEXTFLEET_MAX_NUM_SEQS": "16",
    "TEXTFLEET_CPU_KVCACHE_GIB": "1",
    "TEXTFLEET_CLASSIFY_CONCURRENCY": "16",
}


@pytest.fixture
def database_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


def _assert_clean(report: ChaosReport) -> None:
    details = "\n".join(f"{what}: {result}" for what, result in report.rows())
    assert report.workers_died == [], f"worker processes died by themselves (logs in {report.log_dir})"
    assert report.lost == 0, details
    assert report.finished_twice == 0, details
    assert report.statuses == {"succeeded": report.jobs}, details
    assert report.events_missing == 0, details
    assert report.events_duplicated == 0, details
    assert report.bad_signatures == 0, details
    assert all(r < float("inf") for r in report.recoveries_s), "jobs never flowed again after Redis returned"
    assert report.ok


def test_worker_kill_and_redis_restart_lose_nothing(database_url: str, tmp_path: Path) -> None:
    """The generation worker (and its engine) is killed mid-run and replaced; Redis restarts empty."""
    plan = ChaosPlan(jobs=300, generate_share=0.16, worker_kills=1, redis_restarts=1, env=ENGINE_ENV)
    report = run_chaos(plan, database_url, tmp_path / "logs")
    assert len(report.faults) == 2, report.faults
    _assert_clean(report)


def test_repeated_redis_restarts_while_every_worker_holds_work(database_url: str, tmp_path: Path) -> None:
    """Redis is killed and restarted empty three times while the generate, classify and webhook
    workers all hold unacknowledged work: every worker process rides it out (none exits by itself)."""
    plan = ChaosPlan(
        jobs=900,
        generate_share=0.06,
        worker_kills=0,
        redis_restarts=3,
        fault_window=(0.1, 0.6),
        env=ENGINE_ENV,
    )
    report = run_chaos(plan, database_url, tmp_path / "logs")
    assert len(report.faults) == 3, report.faults
    _assert_clean(report)
