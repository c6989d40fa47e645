"""`textfleet bench --scenario webhooks`: one webhook worker against a local receiver.

Starts a receiver process (`bench.receiver`, ten endpoints on ten ports) and one webhook worker
(`textfleet worker --queues webhooks`, as deployed), on the configured database and Redis. Events are
written as the fleet writes them (a job row, its `completed` delivery row, then the id in the due set),
straight into the database, so only the webhook path is measured:

1. burst: N events at once to one endpoint (written while the worker is held, then released) ->
   events/s (release to last receipt) and the skipped executions of the worker
   (`textfleet_webhook_deliveries_total{outcome="skipped"}`) as a share of the deliveries;
2. steady: events at a fixed rate to one endpoint -> delivery lag (event time to receipt) p50/p99;
3. one bad endpoint: events at a fixed rate over ten endpoints, one of which hangs past the delivery
   timeout -> lag p50/p99 of the other nine;
4. Redis loss: mid-burst the due, leased and epoch keys are deleted (what a restart without
   persistence loses) -> the longest pause in deliveries after it, and the rate after it.

Every phase checks that each event arrived once, under its delivery id, correctly signed.
Writes webhooks.json and webhooks.md into the output directory.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from base64 import b64encode
from collections import Counter
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from sqlalchemy import insert, update

from bench.report import percentile
from bench.workloads.webhooks_report import markdown_table, render_table
from shared.db import repository, session_scope
from shared.db.migrate import upgrade
from shared.db.models import WebhookDelivery, utcnow
from shared.settings import Settings
from shared.webhooks import queue as webhook_queue
from shared.webhooks.records import new_delivery_id

__all__ = ["WebhookBenchConfig", "run_webhook_bench"]


@dataclass(frozen=True)
class WebhookBenchConfig:
    """What to measure; `quick` is the CI smoke mode (tiny counts, same code path)."""

    burst_events: int = 20_000
    steady_rate: float = 1000.0
    steady_s: float = 10.0
    bad_rate: float = 500.0
    bad_s: float = 15.0
    endpoints: int = 10
    timeout_s: float = 10.0
    out_dir: Path = Path("bench-results")

    @classmethod
    def quick(cls, out_dir: Path) -> WebhookBenchConfig:
        return cls(
            burst_events=300,
            steady_rate=100.0,
            steady_s=2.0,
            bad_rate=100.0,
            bad_s=3.0,
            timeout_s=1.0,
            out_dir=out_dir,
        )


def _free_port() -> int:
    from textfleet.dev import free_port

    return free_port()


class _Rig:
    """The receiver and worker processes, and the database and Redis they share."""

    def __init__(self, settings: Settings, config: WebhookBenchConfig) -> None:
        self.settings = settings
        self.config = config
        self.secret = "whsec_" + b64encode(secrets.token_bytes(24)).decode()
        self.ports = [_free_port() for _ in range(config.endpoints)]
        self.side_port = _free_port()
        self.redis = redis.Redis.from_url(settings.redis_url)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.http = httpx.Client(timeout=30)

    def start(self) -> None:
        upgrade(self.settings.database_url)
        self._forget_pending()
        env = {
            **os.environ,
            "TEXTFLEET_DATABASE_URL": self.settings.database_url,
            "TEXTFLEET_REDIS_URL": self.settings.redis_url,
            "TEXTFLEET_WEBHOOK_SECRET": self.secret,
            "TEXTFLEET_WEBHOOK_ALLOW_PRIVATE": "true",
            "TEXTFLEET_WEBHOOK_TIMEOUT_S": str(self.config.timeout_s),
            "TEXTFLEET_WORKER_HTTP_PORT": str(self.side_port),
            "TEXTFLEET_LOG_LEVEL": "warning",
        }
        ports = ",".join(map(str, self.ports))
        receiver = [sys.executable, "-m", "bench.receiver", "--ports", ports]
        receiver += ["--hang", str(self.ports[-1]), "--hang-s", str(self.config.timeout_s * 3)]
        self._spawn([*receiver, "--secret", self.secret], env)
        self._spawn([sys.executable, "-m", "textfleet", "worker", "--queues", "webhooks"], env)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
            try:
                self.http.get(f"http://127.0.0.1:{self.side_port}/healthz").raise_for_status()
                self.count()
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise TimeoutError("the webhook worker or the receiver did not start")

    def _spawn(self, argv: list[str], env: dict[str, str]) -> None:
        self.procs.append(subprocess.Popen(argv, env=env, start_new_session=True))

    def _forget_pending(self) -> None:
        """Earlier runs' leftovers (the bad endpoint's events) are not this run's to deliver."""
        with session_scope(self.settings.database_url) as session:
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.status == "pending")
                .values(status="failed", next_attempt_at=None, last_error="abandoned by the benchmark")
            )
        self.redis.delete(webhook_queue.DUE_KEY, webhook_queue.LEASED_KEY)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=self.config.timeout_s + 30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self._forget_pending()
        self.http.close()
        self.redis.close()

    def emit(self, ports: list[int], count: int) -> dict[str, tuple[float, int]]:
        """`count` events spread over `ports`, written as the fleet writes them; id -> (event time,
        port)."""
        now = utcnow()
        jobs, rows = [], []
        for i in range(count):
            url = f"http://127.0.0.1:{ports[i % len(ports)]}/hook"
            job = repository.new_job_row(
                task="sentiment",
                input_={"text": f"bench event {i}"},
                params={},
                metadata={},
                priority=5,
                created_at=now,
                webhook=url,
                webhook_events=["completed"],
            )
            job.update(status="succeeded", result={"label": "positive"}, finished_at=now)
            jobs.append(job)
            rows.append(
                {
                    "id": new_delivery_id(),
                    "job_id": job["id"],
                    "event": "completed",
                    "url": url,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
        with session_scope(self.settings.database_url) as session:
            repository.insert_job_rows(session, jobs)
            for start in range(0, len(rows), 1000):
                session.execute(insert(WebhookDelivery), rows[start : start + 1000])
        ids = [r["id"] for r in rows]
        webhook_queue.enqueue(self.redis, ids)
        at = now.timestamp()
        return {r["id"]: (at, ports[i % len(ports)]) for i, r in enumerate(rows)}

    def pause(self) -> None:
        """Hold the worker (SIGSTOP) while a burst is written."""
        os.kill(self.procs[1].pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.procs[1].pid, signal.SIGCONT)

    def worker_cpu_s(self) -> float:
        """CPU seconds the worker process has used (Linux /proc; 0 elsewhere)."""
        try:
            fields = Path(f"/proc/{self.procs[1].pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def count(self) -> int:
        return int(self.http.get(f"http://127.0.0.1:{self.ports[0]}/__count").text)

    def records(self) -> list[tuple[str, float, int, bool]]:
        data = self.http.get(f"http://127.0.0.1:{self.ports[0]}/__stats?reset=1").json()
        return [(str(i), float(t), int(p), bool(v)) for i, t, p, v in data["records"]]

    def wait_for(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.count() < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.count()} of {count} events arrived within {timeout_s:g} s")
            time.sleep(0.05)

    def outcomes(self) -> Counter[str]:
        """The worker's delivery outcomes and attempt errors so far (from its /metrics)."""
        counts: Counter[str] = Counter()
        text = self.http.get(f"http://127.0.0.1:{self.side_port}/metrics").text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue
                if family.name == "textfleet_webhook_deliveries":
                    counts[sample.labels["outcome"]] += int(sample.value)
                elif family.name == "textfleet_webhook_attempt_errors":
                    counts[f"error_{sample.labels['kind']}"] += int(sample.value)
        return counts

    def skipped(self) -> float:
        return self.outcomes()["skipped"]


def _check(records: list[tuple[str, float, int, bool]], sent: dict[str, tuple[float, int]]) -> dict[str, Any]:
    """Exactly once per id, correctly signed; lags (receipt - event time) of what arrived."""
    seen = Counter(r[0] for r in records)
    return {
        "duplicates": float(sum(n - 1 for n in seen.values() if n > 1)),
        "unknown_ids": float(sum(1 for i in seen if i not in sent)),
        "bad_signatures": float(sum(1 for r in records if not r[3])),
    }


def _steady(rig: _Rig, ports: list[int], rate: float, seconds: float) -> dict[str, tuple[float, int]]:
    """Events at `rate`/s for `seconds` (a batch every 50 ms); id -> (event time, port)."""
    sent: dict[str, tuple[float, int]] = {}
    tick = 0.05
    per_tick = rate * tick
    start = time.monotonic()
    owed = 0.0
    while time.monotonic() - start < seconds:
        owed += per_tick
        batch = int(owed)
        owed -= batch
        if batch:
            sent.update(rig.emit(ports, batch))
        next_at = start + tick * (1 + round((time.monotonic() - start) / tick))
        time.sleep(max(0.0, next_at - time.monotonic()))
    return sent


def run_webhook_bench(settings: Settings, config: WebhookBenchConfig, console: Console) -> dict[str, Any]:
    """Run the four phases; write webhooks.json and webhooks.md; return the results."""
    rig = _Rig(settings, config)
    rig.start()
    results: dict[str, Any] = {"config": {k: str(v) for k, v in asdict(config).items()}}
    try:
        # 1. burst
        console.print(f"webhooks: burst of {config.burst_events} events to one endpoint")
        before = rig.outcomes()
        skipped_before = rig.skipped()
        rig.pause()  # the events are written first, then released at once
        sent = rig.emit(rig.ports[:1], config.burst_events)
        cpu_before = rig.worker_cpu_s()
        started = time.time()
        rig.resume()
        rig.wait_for(config.burst_events, timeout_s=600)
        cpu = rig.worker_cpu_s() - cpu_before
        records = rig.records()
        last = max(r[1] for r in records)
        results["burst"] = {
            "events": float(config.burst_events),
            "events_per_s": config.burst_events / (last - started),
            "skipped_executions": rig.skipped() - skipped_before,
            "worker_cpu_s": cpu,
            "events_per_worker_cpu_s": config.burst_events / cpu if cpu else 0.0,
            "worker_outcomes": dict(rig.outcomes() - before),
            **_check(records, sent),
        }
        # 2. steady rate, one endpoint
        console.print(f"webhooks: {config.steady_rate:g} events/s for {config.steady_s:g} s")
        before = rig.outcomes()
        sent = _steady(rig, rig.ports[:1], config.steady_rate, config.steady_s)
        rig.wait_for(len(sent), timeout_s=120)
        records = rig.records()
        lags = [t - sent[i][0] for i, t, _, _ in records if i in sent]
        results["steady"] = {
            "offered_per_s": len(sent) / config.steady_s,
            "events": float(len(sent)),
            "worker_outcomes": dict(rig.outcomes() - before),
            "lag_p50_s": percentile(lags, 50),
            "lag_p99_s": percentile(lags, 99),
            **_check(records, sent),
        }
        # 3. ten endpoints, the last one hangs past the timeout
        console.print(
            f"webhooks: {config.bad_rate:g} events/s over {config.endpoints} endpoints, one hanging"
        )
        before = rig.outcomes()
        sent = _steady(rig, rig.ports, config.bad_rate, config.bad_s)
        good = set(rig.ports[:-1])
        expected = sum(1 for _, port in sent.values() if port in good)
        rig.wait_for(expected, timeout_s=120)
        records = rig.records()
        lags = [t - sent[i][0] for i, t, port, _ in records if i in sent and port in good]
        results["one_endpoint_hanging"] = {
            "offered_per_s": len(sent) / config.bad_s,
            "events_to_good_endpoints": float(expected),
            "worker_outcomes": dict(rig.outcomes() - before),
            "good_lag_p50_s": percentile(lags, 50),
            "good_lag_p99_s": percentile(lags, 99),
            **_check(records, sent),
        }
        # 4. Redis loses the due set mid-burst (what a restart without persistence loses)
        console.print("webhooks: the due set is lost mid-burst")
        half = max(config.burst_events // 2, 2)
        before = rig.outcomes()
        rig.pause()
        sent = rig.emit(rig.ports[:1], half)
        rig.resume()
        rig.wait_for(half // 4, timeout_s=300)
        lost_at = time.time()
        rig.redis.delete(webhook_queue.DUE_KEY, webhook_queue.LEASED_KEY, webhook_queue.EPOCH_KEY)
        rig.wait_for(half, timeout_s=300)
        records = rig.records()
        after = sorted([lost_at] + [t for _, t, _, _ in records if t > lost_at])
        results["due_set_lost"] = {
            "events": float(half),
            "longest_pause_after_loss_s": max((b - a for a, b in pairwise(after)), default=0.0),
            "events_per_s_after_loss": (len(after) - 1) / max(after[-1] - lost_at, 1e-9),
            "worker_outcomes": dict(rig.outcomes() - before),
            **_check(records, sent),
        }
    finally:
        rig.stop()
    config.out_dir.mkdir(parents=True, exist_ok=True)
    (config.out_dir / "webhooks.json").write_text(json.dumps(results, indent=2))
    (config.out_dir / "webhooks.md").write_text(markdown_table(results))
    console.print(render_table(results))
    return results
