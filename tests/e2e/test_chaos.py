"""Chaos: no job lost, none finished twice, every webhook event delivered under one id.

Real parts only: a Redis server this test starts itself without persistence (so a restart really
loses every message it held), PostgreSQL, the API, a generation worker with the real vLLM engine, two
classify workers, a webhook worker and a local webhook receiver. Mid-run the generation worker is
killed with SIGKILL (and restarted), then Redis is killed and restarted empty. The database and the
sweeper must bring every job to exactly one terminal state.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import select

from shared.db import session_scope
from shared.db.migrate import upgrade
from shared.db.models import Job, WebhookDelivery
from tests.utils.receiver import WebhookReceiver
from tests.utils.services import IN_CI, postgres_database
from workers.dev import free_port
from workers.heartbeat import heartbeat_key

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
GENERATE_JOBS = 48
CLASSIFY_JOBS = 252
TERMINAL = {"succeeded", "failed", "canceled", "expired"}


@dataclass
class Fleet:
    """The processes of the chaos test, each logging JSON lines to its own file."""

    env: dict[str, str]
    log_dir: Path
    redis_port: int
    api_port: int
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    redis_proc: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start_redis(self) -> None:
        server = shutil.which("redis-server")
        assert server, "redis-server is needed for the chaos test"
        self.redis_proc = subprocess.Popen(
            [
                server,
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        client = redis.Redis(port=self.redis_port)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def kill_redis(self) -> None:
        assert self.redis_proc is not None
        self.redis_proc.kill()
        self.redis_proc.wait()

    def spawn(self, name: str, *args: str) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill9(self, name: str) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)  # the worker and its vLLM engine process
        proc.wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if self.redis_proc is not None and self.redis_proc.poll() is None:
            self.kill_redis()

    def wait_ready(self, workers: dict[str, int], timeout: float = 420) -> None:
        """API ready and `workers[queue]` heartbeats present per queue."""
        client = redis.Redis(port=self.redis_port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                assert proc.poll() is None, f"{name} exited early; see {self.log_dir / name}.log"
            try:
                api_ok = httpx.get(f"{self.api_url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                api_ok = False
            counts = {q: len(client.keys(heartbeat_key(q, "*"))) for q in workers}
            if api_ok and all(counts[q] >= n for q, n in workers.items()):
                return
            time.sleep(0.5)
        raise TimeoutError(f"fleet not ready: {counts}")

    def finished_events(self) -> dict[str, int]:
        """How many times each job's terminal state was written (workers log `job.finished` only
        when their conditional update won), across every worker log, the killed one's included."""
        counts: dict[str, int] = defaultdict(int)
        for path in self.log_dir.glob("worker-*.log"):
            for line in path.read_text(errors="replace").splitlines():
                if '"job.finished"' not in line:
                    continue
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if event.get("event") == "job.finished":
                    counts[event["job_id"]] += 1
        return counts


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("redis-server is not installed; the chaos test needs it")
        pytest.skip("redis-server is not installed")
    with postgres_database() as database_url:
        upgrade(database_url)
        redis_port, api_port = free_port(), free_port()
        env = {
            **os.environ,
            "TEXTFLEET_DATABASE_URL": database_url,
            "TEXTFLEET_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "TEXTFLEET_WEBHOOK_SECRET": SECRET,
            "TEXTFLEET_WEBHOOK_ALLOW_PRIVATE": "true",
            "TEXTFLEET_LOG_FORMAT": "json",
            "TEXTFLEET_SWEEP_INTERVAL_S": "2",
            "TEXTFLEET_REQUEUE_AFTER_S": "10",
            "TEXTFLEET_WORKER_HEARTBEAT_S": "1",
            "TEXTFLEET_MAX_ATTEMPTS": "5",
            "TEXTFLEET_MAX_NUM_SEQS": "16",
            "TEXTFLEET_CPU_KVCACHE_GIB": "1",
            "TEXTFLEET_WORKER_DRAIN_S": "5",
            "TEXTFLEET_CLASSIFY_CONCURRENCY": "16",
            "PYTHONUNBUFFERED": "1",
        }
        fleet = Fleet(env=env, log_dir=tmp_path, redis_port=redis_port, api_port=api_port)
        try:
            fleet.start_redis()
            fleet.spawn("api", "api", "--port", str(api_port))
            fleet.spawn("worker-generate-1", "worker", "--queues", "generate")
            fleet.spawn("worker-classify-1", "worker", "--queues", "classify")
            fleet.spawn("worker-classify-2", "worker", "--queues", "classify")
            fleet.spawn("worker-webhooks", "worker", "--queues", "webhooks")
            fleet.wait_ready({"generate": 1, "classify": 2, "webhooks": 1})
            yield fleet
        finally:
            fleet.stop()


def _bodies(receiver: WebhookReceiver) -> list[dict[str, object]]:
    hook = {"webhook": receiver.url(), "webhook_events": ["started", "completed"]}
    generate = [
        {
            "task": "generate",
            "input": {"prompt": f"Tell a short fact #{i}."},
            "params": {"max_tokens": 24, "min_tokens": 24, "temperature": 0},
            **hook,
        }
        for i in range(GENERATE_JOBS)
    ]
    tasks = ("moderate", "risk", "sentiment")
    classify = [
        {
            "task": tasks[i % 3],
            "input": {"text": f"Message number {i}: have a nice day!"},
            "priority": i % 10,
            **hook,
        }
        for i in range(CLASSIFY_JOBS)
    ]
    return generate + classify


def _jobs(database_url: str) -> list[Job]:
    with session_scope(database_url) as session:
        return list(session.scalars(select(Job)).all())


def test_no_job_lost_none_finished_twice(fleet: Fleet) -> None:
    database_url = fleet.env["TEXTFLEET_DATABASE_URL"]
    with WebhookReceiver() as receiver, httpx.Client(base_url=fleet.api_url, timeout=60) as http:
        bodies = _bodies(receiver)
        ids: list[str] = []
        for chunk in (bodies[:150], bodies[150:]):
            response = http.post("/v1/jobs/batch", json={"jobs": chunk})
            assert response.status_code == 202, response.text
            ids += [item["id"] for item in response.json()["items"]]
        assert len(set(ids)) == len(bodies)

        # 1. kill -9 the generation worker while it runs jobs, then start a new one.
        deadline = time.monotonic() + 120
        while not any(j.status == "running" and j.task == "generate" for j in _jobs(database_url)):
            assert time.monotonic() < deadline, "no generation job started"
            time.sleep(0.2)
        time.sleep(1.0)
        fleet.kill9("worker-generate-1")
        fleet.spawn("worker-generate-2", "worker", "--queues", "generate")

        # 2. Restart Redis empty: every queued message, heartbeat and pending webhook message is gone.
        time.sleep(1.0)
        fleet.kill_redis()
        time.sleep(1.0)
        fleet.start_redis()

        # 3. Everything must still end, exactly once.
        deadline = time.monotonic() + 600
        while True:
            jobs = _jobs(database_url)
            if all(j.status in TERMINAL for j in jobs):
                break
            assert time.monotonic() < deadline, (
                f"{sum(j.status not in TERMINAL for j in jobs)} jobs not terminal"
            )
            for name, proc in fleet.procs.items():
                assert proc.poll() is None, f"{name} died; see {fleet.log_dir / name}.log"
            time.sleep(1.0)

        by_id = {j.id: j for j in jobs}
        assert set(by_id) == set(ids)
        statuses = defaultdict(int)
        for job in jobs:
            statuses[job.status] += 1
        assert statuses == {"succeeded": len(ids)}, dict(statuses)
        assert any(j.attempts > 1 for j in jobs if j.task == "generate"), (
            "the kill should have forced a retry"
        )

        # No completion was written twice: one winning terminal write per job, across all workers.
        finished = fleet.finished_events()
        assert set(finished) == set(ids)
        assert {job_id: n for job_id, n in finished.items() if n != 1} == {}

        # Every event of every job was delivered, under one webhook-id each (retries may repeat it).
        deadline = time.monotonic() + 120
        while True:
            with session_scope(database_url) as session:
                deliveries = list(session.scalars(select(WebhookDelivery)).all())
            if len(deliveries) == 2 * len(ids) and all(d.status == "delivered" for d in deliveries):
                break
            pending = sum(d.status != "delivered" for d in deliveries)
            assert time.monotonic() < deadline, f"{len(deliveries)} deliveries, {pending} not delivered"
            time.sleep(1.0)
        ids_per_event: dict[tuple[str, str], set[str]] = defaultdict(set)
        for request in receiver.received():
            payload = request.json
            ids_per_event[(payload["data"]["id"], payload["type"])].add(request.headers["webhook-id"])
        expected = {(job_id, kind) for job_id in ids for kind in ("job.started", "job.completed")}
        assert set(ids_per_event) == expected
        assert {key: v for key, v in ids_per_event.items() if len(v) != 1} == {}
        recorded = {(d.job_id, f"job.{d.event}"): d.id for d in deliveries}
        assert all(ids_per_event[key] == {recorded[key]} for key in expected)
