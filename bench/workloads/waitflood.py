"""`textfleet bench --wait-flood`: one API process holding thousands of long-polling clients.

1. The API alone (no workers) on the bench's stack; `jobs` jobs submitted, so they stay queued.
2. A separate client process opens `waiters` concurrent `GET /v1/jobs/{id}?wait=N`, spread over the
   jobs, and keeps them open.
3. Meanwhile `/readyz`, `/v1/queues` and `/metrics` are probed one after another, from the start of the
   flood to its end: status and latency of every probe (the API's `textfleet_api_waits_held` gauge,
   read from each `/metrics` probe, says when the whole flood is held).
4. Once every waiter is held (plus `hold_s`), the jobs are finished as a worker would (terminal state
   committed, then announced): every waiter must answer `200` with its finished job; how long after
   the announcement they were released is reported.
5. The worst-case cost of rendering one exception log line (huge message, deep stack, large locals),
   in both renderers: what an error costs the event loop.

Writes `waitflood.json` into the output directory and prints a table.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import resource
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from rich.console import Console
from rich.table import Table

from bench.loadgen import api_stack
from bench.report import percentile
from shared.db import repository, session_scope
from shared.events import announce_terminals
from shared.schemas import JobStatus
from shared.settings import Settings

__all__ = ["WaitFloodConfig", "WaitFloodReport", "measure_log_render", "run_wait_flood"]

HEALTH_PATHS = ("/readyz", "/v1/queues", "/metrics")
_HELD_GAUGE = "textfleet_api_waits_held "


@dataclass(frozen=True)
class WaitFloodConfig:
    """The flood. `quick` is the CI smoke mode: same code path, small counts."""

    waiters: int = 2000
    jobs: int = 20
    wait_s: float = 60.0
    hold_s: float = 10.0
    probe_interval_s: float = 0.02
    out_dir: Path = Path("bench-results")

    @classmethod
    def quick(cls, out_dir: Path) -> WaitFloodConfig:
        return cls(waiters=100, jobs=4, wait_s=30.0, hold_s=1.0, out_dir=out_dir)


@dataclass
class WaitFloodReport:
    config: dict[str, Any]
    waiters_held: int = 0
    seconds_to_hold_all: float = 0.0
    redis_clients_at_peak: int = 0
    waiter_statuses: dict[str, int] = field(default_factory=dict)
    release_p50_ms: float = 0.0
    release_p99_ms: float = 0.0
    release_max_ms: float = 0.0
    probes: dict[str, dict[str, float]] = field(default_factory=dict)
    log_render_worst_ms: dict[str, float] = field(default_factory=dict)


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _flood(url: str, job_ids: list[str], waiters: int, wait_s: float, out: Any) -> None:
    """The client process: `waiters` concurrent long polls; puts [(status, job status, answered_at)].

    Plain HTTP/1.1 over asyncio streams, one connection per waiter: a pooled HTTP client's bookkeeping
    grows with its connections and would measure itself, not the API."""
    _raise_nofile()
    parsed = httpx.URL(url)
    host, port = parsed.host, parsed.port or 80

    async def one(i: int) -> tuple[int, str, float]:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            path = f"/v1/jobs/{job_ids[i % len(job_ids)]}?wait={wait_s:g}"
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            raw = await asyncio.wait_for(reader.read(), wait_s + 60)
            answered = time.time()
            writer.close()
            head, _, body = raw.partition(b"\r\n\r\n")
            status_code = int(head.split(b" ", 2)[1])
            status = ""
            if status_code == 200:
                status = str(json.loads(_dechunk(head, body)).get("status", ""))
            return status_code, status, answered
        except Exception as exc:  # a refused or reset connection is a result too
            return 0, type(exc).__name__, time.time()

    async def main() -> list[tuple[int, str, float]]:
        return await asyncio.gather(*(one(i) for i in range(waiters)))

    out.put(asyncio.run(main()))


def _dechunk(head: bytes, body: bytes) -> bytes:
    """The body of an HTTP/1.1 response (undoing chunked transfer encoding if used)."""
    if b"transfer-encoding: chunked" not in head.lower():
        return body
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out


class _Prober(threading.Thread):
    """Probes the health endpoints one after another until stopped; reads the held-waiters gauge."""

    def __init__(self, url: str, interval_s: float) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.interval_s = interval_s
        self.samples: dict[str, list[tuple[int, float]]] = {path: [] for path in HEALTH_PATHS}
        self.held = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                for path in HEALTH_PATHS:
                    started = time.perf_counter()
                    try:
                        response = client.get(path)
                        status = response.status_code
                    except httpx.HTTPError:
                        status, response = 0, None
                    self.samples[path].append((status, time.perf_counter() - started))
                    if path == "/metrics" and response is not None and status == 200:
                        for line in response.text.splitlines():
                            if line.startswith(_HELD_GAUGE):
                                self.held = int(float(line.split()[1]))
                time.sleep(self.interval_s)

    def summary(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for path, samples in self.samples.items():
            latencies = [s for _, s in samples]
            out[path] = {
                "probes": len(samples),
                "non_200": sum(1 for status, _ in samples if status != 200),
                "p50_ms": percentile(latencies, 50) * 1000,
                "p99_ms": percentile(latencies, 99) * 1000,
                "max_ms": max(latencies, default=0.0) * 1000,
            }
        return out


def _finish(database_url: str, redis_url: str, job_ids: list[str]) -> float:
    """Finish the jobs as a worker does (commit, then announce); when the announcement went out."""
    with session_scope(database_url) as session:
        repository.succeed_unrun(session, job_ids, {"label": "positive"})
    client = redis.Redis.from_url(redis_url)
    try:
        announce_terminals(client, [(job_id, "sentiment", JobStatus.SUCCEEDED.value) for job_id in job_ids])
        return time.time()
    finally:
        client.close()


def measure_log_render(repeat: int = 5) -> dict[str, float]:
    """Worst time (ms) to render one exception log line in each renderer: a 10 MB message, a stack of
    ~500 frames, and 10 MB of locals in every frame (what rich tracebacks used to render)."""
    import io
    import logging

    import structlog

    from shared.logging import configure_logging

    def deep(depth: int, payload: str) -> None:
        local_payload = payload  # a large local in every frame
        if depth == 0:
            raise ValueError(local_payload)
        deep(depth - 1, local_payload)

    payload = "x" * 10_000_000
    worst: dict[str, float] = {}
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        for fmt in ("console", "json"):
            configure_logging(Settings(log_format=fmt), process="bench")
            sink = io.StringIO()
            root.handlers[0].setStream(sink)  # type: ignore[attr-defined]
            log = structlog.get_logger("bench.render")
            times = []
            for _ in range(repeat):
                try:
                    deep(480, payload)
                except ValueError:
                    started = time.perf_counter()
                    log.exception("request.unhandled_error", path="/v1/jobs")
                    times.append(time.perf_counter() - started)
            worst[fmt] = max(times) * 1000
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    return worst


def run_wait_flood(settings: Settings, config: WaitFloodConfig, console: Console) -> WaitFloodReport:
    """Run the flood on the bench's stack (the API only) and write `waitflood.json`."""
    _raise_nofile()
    report = WaitFloodReport(
        config={k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}
    )
    with api_stack(settings, console) as stack, httpx.Client(base_url=stack.url, timeout=60) as http:
        bodies = [{"task": "sentiment", "input": {"text": f"wait flood {i}"}} for i in range(config.jobs)]
        response = http.post("/v1/jobs/batch", json={"jobs": bodies})
        response.raise_for_status()
        job_ids = [job["id"] for job in response.json()["items"]]

        prober = _Prober(stack.url, config.probe_interval_s)
        prober.start()
        context = multiprocessing.get_context("spawn")
        results: Any = context.Queue()
        flood = context.Process(
            target=_flood, args=(stack.url, job_ids, config.waiters, config.wait_s, results), daemon=True
        )
        started = time.perf_counter()
        flood.start()
        with console.status(f"holding {config.waiters} waiters"):
            while prober.held < config.waiters and time.perf_counter() - started < config.wait_s - 5:
                time.sleep(0.1)
        report.waiters_held = prober.held
        report.seconds_to_hold_all = time.perf_counter() - started
        admin = redis.Redis.from_url(stack.redis_url)
        report.redis_clients_at_peak = len(admin.client_list())
        admin.close()
        time.sleep(config.hold_s)
        announced_at = _finish(stack.database_url, stack.redis_url, job_ids)
        answers: list[tuple[int, str, float]] = results.get(timeout=config.wait_s + 120)
        flood.join(timeout=30)
        prober.stop.set()
        prober.join(timeout=30)
    for status_code, status, _ in answers:
        key = f"{status_code} {status}".strip()
        report.waiter_statuses[key] = report.waiter_statuses.get(key, 0) + 1
    released = [at - announced_at for code, status, at in answers if code == 200 and status == "succeeded"]
    report.release_p50_ms = percentile(released, 50) * 1000
    report.release_p99_ms = percentile(released, 99) * 1000
    report.release_max_ms = max(released, default=0.0) * 1000
    report.probes = prober.summary()
    report.log_render_worst_ms = measure_log_render()
    config.out_dir.mkdir(parents=True, exist_ok=True)
    (config.out_dir / "waitflood.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    console.print(render_table(report))
    return report


def render_table(report: WaitFloodReport) -> Table:
    table = Table(title=f"wait flood: {report.config['waiters']} concurrent ?wait on one API process")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("waiters held (gauge)", str(report.waiters_held))
    table.add_row("seconds to hold them all", f"{report.seconds_to_hold_all:.1f}")
    table.add_row("Redis clients at peak (whole server)", str(report.redis_clients_at_peak))
    table.add_row("waiter answers", ", ".join(f"{k}: {v}" for k, v in sorted(report.waiter_statuses.items())))
    table.add_row(
        "released after the announcement p50 / p99 / max (ms)",
        f"{report.release_p50_ms:.0f} / {report.release_p99_ms:.0f} / {report.release_max_ms:.0f}",
    )
    for path, probe in report.probes.items():
        table.add_row(
            f"{path}: probes, non-200, p50 / p99 / max (ms)",
            f"{probe['probes']:.0f}, {probe['non_200']:.0f}, "
            f"{probe['p50_ms']:.1f} / {probe['p99_ms']:.1f} / {probe['max_ms']:.1f}",
        )
    for renderer, ms in report.log_render_worst_ms.items():
        table.add_row(f"worst exception log line, {renderer} (ms)", f"{ms:.2f}")
    return table
