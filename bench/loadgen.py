"""Load generation of `textfleet bench`: submitting jobs over HTTP (bulk, closed loop, open loop),
waiting for them in the database, and the bench's own stack (an API on embedded Redis and SQLite).

Workloads (`bench.workloads`) decide what to send; this module only sends it and waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import redis
from rich.console import Console
from rich.progress import Progress
from sqlalchemy import func, select

from shared.constants import OUTSTANDING_PREFIX, Queue
from shared.db import Job, repository, session_scope
from shared.schemas import TERMINAL_STATUSES
from shared.settings import Settings

__all__ = [
    "api_stack",
    "client_headers",
    "purge",
    "submit_at_rate",
    "submit_bulk",
    "submit_single",
    "wait_terminal",
]

TERMINAL = [s.value for s in TERMINAL_STATUSES]


def submit_bulk(http: httpx.Client, bodies: list[dict[str, Any]], chunk: int = 10_000) -> list[str]:
    """Submit through `POST /v1/jobs/batch`, in chunks; returns the ids in order."""
    ids: list[str] = []
    for i in range(0, len(bodies), chunk):
        response = http.post("/v1/jobs/batch", json={"jobs": bodies[i : i + chunk]})
        response.raise_for_status()
        payload = response.json()
        ids.extend(item["id"] for item in payload["items"])
    return ids


def submit_single(
    http: httpx.Client, bodies: list[dict[str, Any]], clients: int, on_done: Callable[[], None] | None = None
) -> tuple[list[str], list[float], float]:
    """Submit one request per job from `clients` threads; returns ids, latencies (s) and wall time."""
    latencies: list[float] = []
    ids: list[str] = []
    lock = threading.Lock()

    def one(body: dict[str, Any]) -> None:
        start = time.perf_counter()
        response = http.post("/v1/jobs", json=body)
        elapsed = time.perf_counter() - start
        response.raise_for_status()
        with lock:
            latencies.append(elapsed)
            ids.append(response.json()["id"])
        if on_done is not None:
            on_done()

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, bodies))
    return ids, latencies, time.perf_counter() - start


def submit_at_rate(
    http: httpx.Client, bodies: list[dict[str, Any]], rate: float, on_done: Callable[[], None] | None = None
) -> tuple[list[float], float]:
    """Open-loop load: request i is due at start + i/rate, whatever earlier ones are doing. Latency is
    measured from the due time, so time spent waiting for a free client counts (no coordinated
    omission). Returns the latencies (s) and the achieved rate (jobs/s)."""
    latencies: list[float] = []
    lock = threading.Lock()
    local = threading.local()  # one client per thread: a pool shared by 64 threads races on sockets
    clients: list[httpx.Client] = []
    start = time.perf_counter() + 0.5

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=http.base_url, timeout=http.timeout)
            with lock:
                clients.append(local.client)
        return local.client  # type: ignore[no-any-return]

    def one(i: int) -> None:
        due = start + i / rate
        mine = client()
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        response = mine.post("/v1/jobs", json=bodies[i])
        done = time.perf_counter()
        response.raise_for_status()
        with lock:
            latencies.append(done - due)
        if on_done is not None:
            on_done()

    try:
        with ThreadPoolExecutor(64) as pool:
            list(pool.map(one, range(len(bodies))))
    finally:
        for c in clients:
            c.close()
    return latencies, len(bodies) / (time.perf_counter() - start)


def wait_terminal(
    database_url: str, ids: list[str], progress: Progress, label: str, timeout: float
) -> list[Job]:
    """Poll the database until every job in `ids` is terminal; returns their rows."""
    bar = progress.add_task(label, total=len(ids))
    low, high = min(ids), max(ids)
    deadline = time.monotonic() + timeout
    while True:
        with session_scope(database_url) as session:
            done = session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.id >= low, Job.id <= high, Job.status.in_(TERMINAL))
            )
        progress.update(bar, completed=done or 0)
        if (done or 0) >= len(ids):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{label}: only {done}/{len(ids)} jobs finished in {timeout:.0f}s")
        time.sleep(0.25)
    wanted = set(ids)
    with session_scope(database_url) as session:
        rows = session.scalars(select(Job).where(Job.id >= low, Job.id <= high)).all()
    return [row for row in rows if row.id in wanted]


def purge(database_url: str, redis_url: str) -> None:
    """Cancel every queued job and empty the queues (intake jobs must not be run)."""
    with session_scope(database_url) as session:
        repository.purge_queued(session, "bench intake")
    client = redis.Redis.from_url(redis_url)
    keys = [key for queue in Queue for key in client.scan_iter(match=f"{queue.value}*")]
    keys += list(client.scan_iter(match=f"{OUTSTANDING_PREFIX}*"))
    if keys:
        client.delete(*keys)
    client.close()


def client_headers(settings: Settings, database_url: str) -> dict[str, str]:
    """Headers of the bench's HTTP clients: when the API requires keys (`TEXTFLEET_AUTH_ENABLED`, read
    from the same environment as the stack's), a new key of the `bench` tenant (jobs:read, jobs:write)
    stored in the stack's database, so intake pays its real key check; else none."""
    if not settings.auth.auth_enabled:
        return {}
    from shared.tenancy.principal import Scope
    from shared.tenancy.store import create_key

    with session_scope(database_url) as session:
        _row, plaintext = create_key(
            session, "bench", (Scope.JOBS_READ, Scope.JOBS_WRITE), name="textfleet bench"
        )
    return {"Authorization": f"Bearer {plaintext}"}


@contextmanager
def api_stack(settings: Settings, console: Console) -> Iterator[Any]:
    """A `DevStack` with the API only (no workers yet; `add_workers` starts them) on a free port."""
    from textfleet.dev import DevStack, free_port

    with DevStack(settings, port=free_port(), queues=(), console=console) as stack:
        yield stack
