"""`textfleet bench --quick`: the harness runs end to end and writes its results. It asserts nothing
about speed (speed goals live in the benchmark's own report, not in tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def test_quick_bench_writes_table_json_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    env = {**os.environ, "TEXTFLEET_CPU_KVCACHE_GIB": "1", "TEXTFLEET_MAX_NUM_SEQS": "8"}
    for name in ("TEXTFLEET_REDIS_URL", "TEXTFLEET_DATABASE_URL"):
        env.pop(name, None)  # the bench stack uses its own embedded Redis and SQLite
    done = subprocess.run(
        [sys.executable, "-m", "textfleet", "bench", "--quick", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads((out / "bench.json").read_text())
    for section in ("bare", "fleet", "intake", "ratios"):
        assert report[section], section
        assert all(value > 0 for value in report[section].values()), report[section]
    assert [row["concurrency"] for row in report["sweep"]] == [1, 4]
    assert report["config"]["generate_jobs"] == 8
    table = (out / "bench.md").read_text()
    assert "generation, output tokens/s" in table and "bulk POST /v1/jobs/batch" in table
    assert report["intake"]["paced_p99_ms"] > 0 and "steady" in table
    png = (out / "throughput.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
