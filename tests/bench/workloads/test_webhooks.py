"""`textfleet bench --scenario webhooks --quick`: the harness runs end to end (a receiver process and a real
`textfleet worker --queues webhooks` process, on the session's database and Redis) and every event arrives
once, under its id, correctly signed. It asserts nothing about speed: that is the benchmark's report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from bench.workloads.webhooks import WebhookBenchConfig, run_webhook_bench
from shared.settings import get_settings


@pytest.mark.timeout(240)
def test_quick_webhook_bench_delivers_everything_once(
    settings_env: None, clean_redis_url: str, tmp_path: Path
) -> None:
    get_settings.cache_clear()
    config = WebhookBenchConfig.quick(tmp_path)

    results = run_webhook_bench(get_settings(), config, Console(file=None, quiet=True))

    burst, steady, bad = results["burst"], results["steady"], results["one_endpoint_hanging"]
    assert burst["events"] == config.burst_events and burst["events_per_s"] > 0
    assert burst["skipped_executions"] == 0
    assert steady["events"] > 0 and 0 < steady["lag_p50_s"] <= steady["lag_p99_s"]
    assert bad["events_to_good_endpoints"] > 0 and bad["good_lag_p99_s"] > 0
    lost = results["due_set_lost"]
    assert lost["events"] > 0 and lost["longest_pause_after_loss_s"] >= 0
    for phase in (burst, steady, bad, lost):
        assert (phase["duplicates"], phase["unknown_ids"], phase["bad_signatures"]) == (0, 0, 0)
    assert json.loads((tmp_path / "webhooks.json").read_text())["burst"]["events"] == config.burst_events
    assert "events/s" in (tmp_path / "webhooks.md").read_text()
