"""CPU time of the fleet's processes over a phase of a benchmark (psutil): what a job costs the machine.

A `CpuMeter` reads each named process's CPU time (user + system, its reaped children included) when a
phase starts and when it ends; the difference is what the phase cost that process. The PostgreSQL
server's backends that serve the bench's database are counted too when the server runs on this
machine (one backend per pooled connection: they live as long as the pools of the API and the
worker), so the database's share of a job is visible next to the API's and the worker's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import psutil
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

__all__ = ["DATABASE", "CpuMeter", "postgres_backends", "process_cpu_s"]

#: The name under which the database server's backends are reported.
DATABASE = "database"


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process `pid` and its reaped children; None if it is gone or
    cannot be read."""
    try:
        times = psutil.Process(pid).cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return float(times.user + times.system + times.children_user + times.children_system)


def postgres_backends(database_url: str) -> list[int]:
    """Process ids of the PostgreSQL backends connected to the database of `database_url` (this
    query's own connection excluded); empty for any other database."""
    url = make_url(database_url)
    if not url.drivername.startswith("postgresql"):
        return []
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            return [int(row[0]) for row in rows]
    finally:
        engine.dispose()


@dataclass
class CpuMeter:
    """CPU seconds spent by named processes between `start()` and `stop()`.

    `pids` names the processes (`{"api": 123, "worker": 456}`); with `database_url` on PostgreSQL,
    the backends serving that database are summed as `DATABASE` (None when none is readable here,
    e.g. a server on another machine)."""

    pids: Mapping[str, int]
    database_url: str | None = None
    _start: dict[str, float] = field(default_factory=dict)
    _backends: dict[int, float] = field(default_factory=dict)

    def start(self) -> None:
        self._start = {name: process_cpu_s(pid) or 0.0 for name, pid in self.pids.items()}
        self._backends = self._read_backends()

    def stop(self) -> dict[str, float | None]:
        """CPU seconds per name since `start()` (None: the process could not be read)."""
        out: dict[str, float | None] = {}
        for name, pid in self.pids.items():
            now = process_cpu_s(pid)
            out[name] = None if now is None else max(0.0, now - self._start.get(name, 0.0))
        if self.database_url is not None:
            backends = self._read_backends()
            if backends:
                # a backend that started during the phase counts whole; one that ended is lost (rare:
                # pooled connections outlive a phase)
                out[DATABASE] = sum(max(0.0, s - self._backends.get(pid, 0.0)) for pid, s in backends.items())
            else:
                out[DATABASE] = None
        return out

    def _read_backends(self) -> dict[int, float]:
        if self.database_url is None:
            return {}
        try:
            pids = postgres_backends(self.database_url)
        except Exception:  # the meter reports what it can read; the bench goes on without it
            return {}
        readings = {pid: process_cpu_s(pid) for pid in pids}
        return {pid: s for pid, s in readings.items() if s is not None}
