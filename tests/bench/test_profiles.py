"""The bench's profile summaries (py-spy raw stacks -> top functions) and its CPU meter."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bench.cpu import CpuMeter, postgres_backends, process_cpu_s
from bench.profiles import Profiler, render_top, top_entries
from tests.utils.services import postgres_database

pytestmark = pytest.mark.timeout(120)

RAW = [
    "<module> (app.py:9);outer (app.py:8);inner (app.py:4) 6\n",
    "<module> (app.py:9);outer (app.py:7);inner (app.py:3) 2\n",
    "<module> (app.py:9);outer (app.py:8);helper (lib/util.py:40) 2\n",
    "not a stack line\n",
]


def test_top_entries_fold_lines_of_a_function_into_one_entry() -> None:
    profile = top_entries(RAW)
    assert profile.samples == 10
    assert profile.self_samples == {"inner (app.py)": 8, "helper (lib/util.py)": 2}
    assert profile.total_samples["outer (app.py)"] == 10
    assert profile.total_samples["inner (app.py)"] == 8
    text = render_top(profile, "worker", limit=2)
    assert "10 samples" in text
    assert "  80.0%        8  inner (app.py)" in text
    assert "helper" in text.split("## top 2 by total")[0]
    ours = text.split("## top 2 by total, this project's functions")[1]
    assert "helper (lib/util.py)" not in ours and "outer (app.py)" not in ours  # not under a project package

    project = top_entries(
        ["<module> (workers/worker.py:9);run (celery/app.py:3);claim (workers/store.py:4) 5\n"]
    )
    ours = render_top(project, "w").split("this project's functions")[1]
    assert "claim (workers/store.py)" in ours and "run (celery/app.py)" not in ours


def test_the_cpu_meter_counts_what_a_process_spent(tmp_path: Path) -> None:
    meter = CpuMeter({"me": os.getpid(), "gone": 2**22 + 12345}, database_url=f"sqlite:///{tmp_path}/x.db")
    meter.start()
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    spent = meter.stop()
    assert spent["me"] is not None and 0.15 <= spent["me"] < 5
    assert spent["gone"] is None and process_cpu_s(2**22 + 12345) is None
    assert spent["database"] is None  # SQLite: no server backends to count
    assert postgres_backends(f"sqlite:///{tmp_path}/x.db") == []


def test_the_cpu_meter_reads_the_backends_of_a_postgresql_database() -> None:
    with postgres_database() as url:
        engine = create_engine(url)
        with engine.connect() as held:  # a backend serving the database while the meter runs
            meter = CpuMeter({}, database_url=url)
            meter.start()
            held.execute(text("SELECT count(*) FROM generate_series(1, 300000)")).scalar()
            spent = meter.stop()
        engine.dispose()
    assert spent["database"] is not None and spent["database"] > 0


def test_the_profiler_writes_the_top_entries_of_a_busy_process(tmp_path: Path) -> None:
    busy = subprocess.Popen(
        [sys.executable, "-c", "import time\ndef spin():\n    while True: sum(range(1000))\nspin()\n"]
    )
    try:
        time.sleep(0.5)
        with Profiler({"spinner": busy.pid}, tmp_path, "profile-test", rate=50) as profiler:
            time.sleep(2.0)
    finally:
        busy.kill()
        busy.wait()
    summary = profiler.summaries["spinner"].read_text()
    assert summary.startswith("# profile-test: spinner:")
    assert "spin (<string>)" in summary
