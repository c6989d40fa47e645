"""`textfleet bench --scenario wait-flood --quick`: the harness holds its waiters, probes the health
endpoints, releases every waiter with its finished job, and writes its figures.
It asserts nothing about speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)


def test_quick_wait_flood_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    env = dict(os.environ)
    for name in ("TEXTFLEET_REDIS_URL", "TEXTFLEET_DATABASE_URL"):
        env.pop(name, None)  # the bench stack uses its own embedded Redis and SQLite
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "textfleet",
            "bench",
            "--scenario",
            "wait-flood",
            "--quick",
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads((out / "waitflood.json").read_text())
    waiters = report["config"]["waiters"]
    assert report["waiters_held"] == waiters
    assert report["waiter_statuses"] == {"200 succeeded": waiters}
    assert report["release_p99_ms"] > 0
    for path in ("/readyz", "/v1/queues", "/metrics"):
        assert report["probes"][path]["probes"] > 0
        assert report["probes"][path]["non_200"] == 0
    assert set(report["log_render_worst_ms"]) == {"console", "json"}
