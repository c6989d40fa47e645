"""A started fleet of the test's own (redis-server, API, optional workers) on PostgreSQL or SQLite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.db.migrate import upgrade
from tests.utils.services import postgres_database
from textfleet.chaos.fleet import Fleet
from textfleet.dev import free_port

__all__ = ["running_fleet"]


@contextmanager
def running_fleet(
    database: str,
    log_dir: Path,
    *,
    env: dict[str, str] | None = None,
    workers: tuple[str, ...] = (),
    ready_timeout_s: float = 420,
) -> Iterator[Fleet]:
    """`database` is "postgresql" (a fresh database on the test server) or "sqlite" (a file in
    `log_dir`); one worker process is started per queue in `workers`, and all are ready on return
    (within `ready_timeout_s`)."""
    if database == "postgresql":
        with postgres_database() as url, _fleet(url, log_dir, env or {}, workers, ready_timeout_s) as fleet:
            yield fleet
    else:
        sqlite = f"sqlite:///{log_dir / 'textfleet.db'}"
        with _fleet(sqlite, log_dir, env or {}, workers, ready_timeout_s) as fleet:
            yield fleet


@contextmanager
def _fleet(
    database_url: str, log_dir: Path, extra: dict[str, str], workers: tuple[str, ...], ready_timeout_s: float
) -> Iterator[Fleet]:
    upgrade(database_url)
    redis_port, api_port = free_port(), free_port()
    env = {
        **os.environ,
        "TEXTFLEET_DATABASE_URL": database_url,
        "TEXTFLEET_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    fleet = Fleet(env=env, log_dir=log_dir, redis_port=redis_port, api_port=api_port)
    try:
        fleet.start_redis()
        fleet.spawn("api", "api", "--port", str(api_port))
        for queue in workers:
            fleet.spawn(f"worker-{queue}", "worker", "--queues", queue)
        fleet.wait_ready(dict.fromkeys(workers, 1), timeout=ready_timeout_s)
        yield fleet
    finally:
        fleet.stop()
