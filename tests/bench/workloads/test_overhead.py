"""`textfleet bench --scenario overhead --quick --profile`: a classify worker with instant classifiers
runs both phases to the end on the bench's own stack, and the harness writes jobs/s, CPU per job per
process and the profiles' top entries. It asserts nothing about speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)


def test_quick_overhead_run_writes_its_figures_and_profiles(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    env = dict(os.environ)
    for name in ("TEXTFLEET_REDIS_URL", "TEXTFLEET_DATABASE_URL"):
        env.pop(name, None)  # the bench stack uses its own embedded Redis and SQLite
    argv = [sys.executable, "-m", "textfleet", "bench", "--scenario", "overhead", "--quick", "--profile"]
    done = subprocess.run([*argv, "--out", str(out)], env=env, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads((out / "overhead.json").read_text())
    assert report["machine"]["database"] == "sqlite"
    assert set(report["phases"]) == {"bulk", "single"}
    for phase in report["phases"].values():
        assert phase["jobs"] == report["config"]["jobs"]
        assert phase["jobs_per_s"] > 0 and phase["worker_jobs_per_s"] >= phase["jobs_per_s"] * 0.99
        assert phase["cpu_us_per_job"]["api"] > 0 and phase["cpu_us_per_job"]["worker"] > 0
        assert phase["fleet_cpu_us_per_job"] == pytest.approx(
            phase["cpu_us_per_job"]["api"] + phase["cpu_us_per_job"]["worker"]
        )
    assert "fleet CPU per job" in (out / "overhead.md").read_text()
    assert set(report["profiles"]) == {"bulk/api", "bulk/worker", "single/api", "single/worker"}
    worker_profile = Path(report["profiles"]["bulk/worker"]).read_text()
    assert "## top 25 by self" in worker_profile
    # the worker served the jobs with the instant classifiers, and said so
    assert "worker.instant_classifiers" in done.stderr + done.stdout
