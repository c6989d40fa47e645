"""One chaos run: submit jobs (all with webhooks), inject faults while they run, wait for every job
and every webhook event to end, and count what went wrong.

The counts are the fleet's guarantees: no job lost (every job reaches a terminal state), none
finished twice (one winning terminal write per job, read from every worker's log, the killed ones'
included), every webhook event delivered under exactly one `webhook-id` with a valid signature, and
no worker process that died by itself. Faults are spread over the run by progress (the share of jobs
that have ended), alternating worker kills (SIGKILL of a worker and its engine process, then a new
one) with Redis restarts (SIGKILL, then an empty Redis).
"""

from __future__ import annotations

import base64
import os
import secrets
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from shared.db import session_scope
from shared.db.migrate import upgrade
from shared.db.models import Job, WebhookDelivery
from textfleet.chaos.fleet import Fleet, incarnation, role
from textfleet.chaos.receiver import ChaosReceiver
from textfleet.dev import free_port

__all__ = ["ChaosPlan", "ChaosReport", "run_chaos"]

TERMINAL = frozenset({"succeeded", "failed", "canceled", "expired"})
CLASSIFY_TASKS = ("moderate", "risk", "sentiment")
#: Workers a kill goes to, in turn.
KILL_ORDER = ("worker-generate", "worker-classify-1", "worker-webhooks", "worker-classify-2")
#: Settings of the fleet under test that make recovery quick enough to watch (the sweeper runs
#: every 2 s, re-sends a queued job whose message is 10 s stale, and misses a worker after 2 s).
RECOVERY_ENV = {
    "TEXTFLEET_SWEEP_INTERVAL_S": "2",
    "TEXTFLEET_REQUEUE_AFTER_S": "10",
    "TEXTFLEET_WORKER_HEARTBEAT_S": "1",
    "TEXTFLEET_MAX_ATTEMPTS": "5",
    "TEXTFLEET_WORKER_DRAIN_S": "5",
}
#: An event delivered later than this after its job's end counts as late.
LATE_AFTER_S = 60.0


@dataclass(frozen=True)
class ChaosPlan:
    """What to run and what to break."""

    jobs: int = 300
    generate_share: float = 0.16
    worker_kills: int = 1
    redis_restarts: int = 1
    classify_workers: int = 2
    redis_down_s: float = 1.0
    #: faults happen between these shares of ended jobs, evenly spaced
    fault_window: tuple[float, float] = (0.05, 0.6)
    settle_timeout_s: float = 900.0
    #: extra TEXTFLEET_* settings for every process of the fleet
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class ChaosReport:
    """What the run found; `ok` when every guarantee held."""

    jobs: int
    statuses: dict[str, int]
    lost: int
    finished_twice: int
    events_expected: int
    events_missing: int
    events_duplicated: int
    bad_signatures: int
    workers_died: list[tuple[str, int]]
    faults: list[str]
    elapsed_s: float
    lag_p50_s: float
    lag_p99_s: float
    lag_max_s: float
    events_late: int
    log_dir: str
    #: seconds from each Redis return until a newly submitted job had run
    recoveries_s: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.statuses == {"succeeded": self.jobs}  # every input is valid: any other end is a fault's
            and self.lost == self.finished_twice == self.events_missing == self.events_duplicated == 0
            and self.bad_signatures == 0
            and not self.workers_died
        )

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("jobs", str(self.jobs)),
            ("statuses", ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items()))),
            ("faults", "; ".join(self.faults) or "none"),
            ("jobs lost", str(self.lost)),
            ("jobs finished twice", str(self.finished_twice)),
            ("webhook events expected", str(self.events_expected)),
            ("webhook events missing", str(self.events_missing)),
            ("webhook events under >1 id", str(self.events_duplicated)),
            ("bad signatures", str(self.bad_signatures)),
            ("worker processes that died by themselves", str(len(self.workers_died))),
            ("event lag after job end p50 / p99 / max (s)", f"{self.lag_p50_s:.2f} / {self.lag_p99_s:.2f} / "
             f"{self.lag_max_s:.2f}"),
            (f"events later than {LATE_AFTER_S:.0f}s", str(self.events_late)),
            ("jobs flowing again after Redis returned (s)",
             ", ".join(f"{r:.1f}" for r in self.recoveries_s) or "-"),
            ("elapsed (s)", f"{self.elapsed_s:.1f}"),
        ]  # fmt: skip


Progress = Callable[[str, int, int], None]


def run_chaos(
    plan: ChaosPlan, database_url: str, log_dir: Path, progress: Progress | None = None
) -> ChaosReport:
    """Run `plan` against a fleet of its own (its own Redis, API and workers) on `database_url`."""
    say = progress or (lambda _phase, _done, _total: None)
    upgrade(database_url)
    log_dir.mkdir(parents=True, exist_ok=True)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    redis_port, api_port = free_port(), free_port()
    env = {
        **os.environ,
        **RECOVERY_ENV,
        "TEXTFLEET_DATABASE_URL": database_url,
        "TEXTFLEET_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "TEXTFLEET_WEBHOOK_SECRET": secret,
        "TEXTFLEET_WEBHOOK_ALLOW_PRIVATE": "true",
        "TEXTFLEET_LOG_FORMAT": "json",
        "TEXTFLEET_AUTH_ENABLED": "false",  # a fleet of its own, on loopback, like `textfleet dev`
        "PYTHONUNBUFFERED": "1",
        **plan.env,
    }
    fleet = Fleet(env=env, log_dir=log_dir, redis_port=redis_port, api_port=api_port)
    started = time.monotonic()
    with ChaosReceiver(secret) as receiver:
        try:
            say("starting the fleet", 0, 1)
            fleet.start_redis()
            fleet.spawn("api", "api", "--port", str(api_port))
            fleet.spawn("worker-generate", "worker", "--queues", "generate")
            for n in range(1, plan.classify_workers + 1):
                fleet.spawn(f"worker-classify-{n}", "worker", "--queues", "classify")
            fleet.spawn("worker-webhooks", "worker", "--queues", "webhooks")
            fleet.wait_ready({"generate": 1, "classify": plan.classify_workers, "webhooks": 1})
            ids = _submit(fleet.api_url, _bodies(plan, receiver.url), say)
            faults = _run_with_faults(plan, fleet, database_url, ids, say)
            _wait_deliveries(fleet, database_url, ids, plan.settle_timeout_s, say)
        finally:
            fleet.stop()
        return _report(plan, fleet, database_url, ids, receiver, faults, time.monotonic() - started)


def _bodies(plan: ChaosPlan, url: str) -> list[dict[str, Any]]:
    hook = {"webhook": url, "webhook_events": ["started", "completed"]}
    generate = round(plan.jobs * plan.generate_share)
    bodies: list[dict[str, Any]] = [
        {
            "task": "generate",
            "input": {"prompt": f"Tell a short fact #{i}."},
            "params": {"max_tokens": 24, "min_tokens": 24, "temperature": 0},
            **hook,
        }
        for i in range(generate)
    ]
    bodies += [
        {
            "task": CLASSIFY_TASKS[i % 3],
            "input": {"text": f"Message number {i}: have a nice day!"},
            "priority": i % 10,
            **hook,
        }
        for i in range(plan.jobs - generate)
    ]
    return bodies


def _submit(api_url: str, bodies: list[dict[str, Any]], say: Progress) -> list[str]:
    ids: list[str] = []
    with httpx.Client(base_url=api_url, timeout=120) as http:
        for start in range(0, len(bodies), 1000):
            response = http.post("/v1/jobs/batch", json={"jobs": bodies[start : start + 1000]})
            response.raise_for_status()
            ids += [item["id"] for item in response.json()["items"]]
            say("submitting", len(ids), len(bodies))
    return ids


def _chunks(ids: Sequence[str], size: int = 1000) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _jobs(database_url: str, ids: Sequence[str]) -> list[Job]:
    jobs: list[Job] = []
    with session_scope(database_url) as session:
        for chunk in _chunks(ids):
            jobs += session.scalars(select(Job).where(Job.id.in_(chunk))).all()
    return jobs


def _deliveries(database_url: str, ids: Sequence[str]) -> list[WebhookDelivery]:
    rows: list[WebhookDelivery] = []
    with session_scope(database_url) as session:
        for chunk in _chunks(ids):
            rows += session.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id.in_(chunk))).all()
    return rows


def _ended(database_url: str, ids: Sequence[str]) -> int:
    return sum(job.status in TERMINAL for job in _jobs(database_url, ids))


def _run_with_faults(
    plan: ChaosPlan, fleet: Fleet, database_url: str, ids: list[str], say: Progress
) -> list[str]:
    kinds = _fault_sequence(plan.worker_kills, plan.redis_restarts)
    low, high = plan.fault_window
    thresholds = [low + (high - low) * i / max(1, len(kinds) - 1) for i in range(len(kinds))]
    done: list[str] = []
    kills = 0
    recoveries = fleet.recoveries
    deadline = time.monotonic() + plan.settle_timeout_s
    while True:
        fleet.check()
        ended = _ended(database_url, ids)
        say("running", ended, len(ids))
        while kinds and ended >= thresholds[len(done)] * len(ids):
            kind = kinds.pop(0)
            if kind == "kill":
                target = _current(fleet, KILL_ORDER[kills % len(KILL_ORDER)])
                kills += 1
                fleet.kill9(target)
                done.append(f"SIGKILL {target} at {ended}/{len(ids)}")
            else:
                fleet.restart_redis(plan.redis_down_s)
                recovery = _time_to_flow(fleet.api_url, database_url)
                recoveries.append(recovery)
                done.append(
                    f"Redis restarted empty at {ended}/{len(ids)} (jobs flowing {recovery:.1f}s later)"
                )
        if ended == len(ids) and not kinds:
            return done
        if time.monotonic() > deadline:
            return done
        time.sleep(0.5)


def _time_to_flow(api_url: str, database_url: str, timeout: float = 120.0) -> float:
    """Seconds from Redis' return until a job submitted after it has run: a high-priority probe job is
    submitted every 0.25 s (a submission may get `503` while the API reconnects) until one succeeds."""
    started = time.monotonic()
    probes: list[str] = []
    with httpx.Client(base_url=api_url, timeout=10) as http:
        while time.monotonic() - started < timeout:
            try:
                response = http.post(
                    "/v1/jobs", json={"task": "sentiment", "input": {"text": "probe"}, "priority": 9}
                )
                if response.status_code == 202:
                    probes.append(response.json()["id"])
            except httpx.HTTPError:
                pass
            if probes and any(job.status == "succeeded" for job in _jobs(database_url, probes)):
                return time.monotonic() - started
            time.sleep(0.25)
    return float("inf")


def _fault_sequence(kills: int, restarts: int) -> list[str]:
    sequence: list[str] = []
    while kills or restarts:
        if kills:
            sequence.append("kill")
            kills -= 1
        if restarts:
            sequence.append("redis")
            restarts -= 1
    return sequence


def _current(fleet: Fleet, base: str) -> str:
    """The running process of a role (`worker-generate`, or its replacement `worker-generate-r2`)."""
    return max((name for name in fleet.procs if role(name) == base), key=incarnation)


def _wait_deliveries(fleet: Fleet, database_url: str, ids: list[str], timeout: float, say: Progress) -> None:
    expected = 2 * len(ids)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fleet.check()
        delivered = sum(d.status == "delivered" for d in _deliveries(database_url, ids))
        say("delivering webhooks", delivered, expected)
        if delivered >= expected:
            return
        time.sleep(1.0)


def _report(
    plan: ChaosPlan,
    fleet: Fleet,
    database_url: str,
    ids: list[str],
    receiver: ChaosReceiver,
    faults: list[str],
    elapsed: float,
) -> ChaosReport:
    jobs = {job.id: job for job in _jobs(database_url, ids)}
    finished = fleet.finished_events()
    expected = {(job_id, kind) for job_id in ids for kind in ("job.started", "job.completed")}
    lags = [
        receiver.first_seen[(job.id, kind)] - moment.timestamp()
        for job in jobs.values()
        for kind, moment in (("job.started", job.started_at), ("job.completed", job.finished_at))
        if moment is not None and (job.id, kind) in receiver.first_seen
    ]
    lags.sort()
    return ChaosReport(
        jobs=len(ids),
        statuses=dict(Counter(job.status for job in jobs.values())),
        lost=sum(1 for job_id in ids if job_id not in jobs or jobs[job_id].status not in TERMINAL),
        finished_twice=sum(1 for job_id in ids if finished.get(job_id, 0) > 1),
        events_expected=len(expected),
        events_missing=len(expected - set(receiver.ids)),
        events_duplicated=sum(1 for key in expected if len(receiver.ids.get(key, ())) > 1),
        bad_signatures=receiver.bad_signatures,
        workers_died=list(fleet.died),
        faults=faults,
        elapsed_s=elapsed,
        lag_p50_s=statistics.median(lags) if lags else 0.0,
        lag_p99_s=lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else 0.0,
        lag_max_s=lags[-1] if lags else 0.0,
        events_late=sum(lag > LATE_AFTER_S for lag in lags),
        log_dir=str(fleet.log_dir),
        recoveries_s=list(fleet.recoveries),
    )
