"""`textfleet dev` process hygiene, started as a script would start it (in the background, where
SIGINT is ignored): SIGINT, SIGTERM and SIGHUP stop the whole fleet, a SIGKILL of dev takes its
children with it (embedded Redis and vLLM's engine process included), and a worker that dies by
itself is restarted. Every descendant is tracked by PID with psutil; none may outlive the test."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from textfleet.dev import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

READY_MARK = "textfleet is ready: "


@dataclass
class Dev:
    proc: subprocess.Popen[str]
    lines: queue.Queue[str]
    output: list[str]

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def wait_for_line(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.proc.poll() is None, "textfleet dev exited:\n" + "".join(self.output[-40:])
                continue
            if text in line:
                return line
        raise AssertionError(f"no {text!r} within {timeout}s:\n" + "".join(self.output[-40:]))


def _ignore_sigint() -> None:
    """What a non-interactive shell does for a command it starts with `&`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.setsid()


@pytest.fixture
def start_dev(tmp_path: Path) -> Iterator[object]:
    started: list[Dev] = []
    leftovers: list[psutil.Process] = []

    def start(queues: str) -> Dev:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"TEXTFLEET_REDIS_URL", "TEXTFLEET_DATABASE_URL"}  # embedded Redis, SQLite
        }
        env |= {
            "TEXTFLEET_DATA_DIR": str(tmp_path / f"data-{len(started)}"),
            "TEXTFLEET_CPU_KVCACHE_GIB": "1",
            "TEXTFLEET_MAX_NUM_SEQS": "8",
            "TEXTFLEET_WORKER_DRAIN_S": "5",
            "TEXTFLEET_DEV_RESTART_BACKOFF_S": "0.5",
            "PYTHONUNBUFFERED": "1",
        }
        argv = [sys.executable, "-m", "textfleet", "dev", "--port", str(free_port()), "--queues", queues]
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_ignore_sigint,
        )
        lines: queue.Queue[str] = queue.Queue()
        output: list[str] = []

        def pump() -> None:
            for line in proc.stdout or []:
                output.append(line)
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        dev = Dev(proc, lines, output)
        started.append(dev)
        dev.wait_for_line(READY_MARK, 420)
        leftovers.extend(dev.descendants())
        return dev

    yield start
    for dev in started:
        if dev.proc.poll() is None:
            dev.proc.kill()
            dev.proc.wait(timeout=30)
    for child in leftovers:
        if child.is_running():
            child.kill()


def _gone_within(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    _gone, alive = psutil.wait_procs(processes, timeout=timeout)
    return [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP])
def test_signal_stops_the_whole_fleet(start_dev: object, sig: signal.Signals) -> None:
    assert callable(start_dev)
    dev: Dev = start_dev("classify,webhooks")
    children = dev.descendants()
    names = " ".join(" ".join(p.cmdline()) for p in children)
    assert "redis-server" in names and "--queues" in names and " api" in names
    dev.proc.send_signal(sig)
    assert dev.proc.wait(timeout=60) == 0
    assert _gone_within(children, 10) == []


def test_sigterm_stops_the_fleet_with_its_vllm_engine(start_dev: object) -> None:
    assert callable(start_dev)
    dev: Dev = start_dev("generate")
    children = dev.descendants()
    assert len(children) >= 4, "dev, redis, api, worker and vLLM's engine process"
    dev.proc.send_signal(signal.SIGTERM)
    assert dev.proc.wait(timeout=60) == 0
    assert _gone_within(children, 10) == []


def test_sigkill_of_dev_takes_every_child_with_it(start_dev: object) -> None:
    assert callable(start_dev)
    dev: Dev = start_dev("generate,classify")
    children = dev.descendants()
    assert any("redis-server" in " ".join(p.cmdline()) for p in children)
    dev.proc.kill()
    dev.proc.wait(timeout=10)
    assert _gone_within(children, 30) == [], "children outlived a SIGKILLed textfleet dev"


def test_a_worker_that_dies_is_restarted(start_dev: object) -> None:
    assert callable(start_dev)
    dev: Dev = start_dev("classify")
    children = [(p, p.cmdline()) for p in dev.descendants()]
    # Celery retitles the process: "[celeryd: classify@host:MainProcess] -active- (worker --queues classify)"
    worker = next((p for p, argv in children if "--queues" in argv and p.ppid() == dev.proc.pid), None)
    assert worker is not None, children
    worker.kill()
    dev.wait_for_line("worker-classify exited with code", 30)
    dev.wait_for_line("worker-classify restarted", 30)
    deadline = time.monotonic() + 120
    while True:
        workers = [p for p in dev.descendants() if "--queues" in p.cmdline() and p.ppid() == dev.proc.pid]
        if workers and workers[0].pid != worker.pid:
            break
        assert time.monotonic() < deadline, "no new worker process"
        time.sleep(0.5)
    dev.proc.send_signal(signal.SIGTERM)
    assert dev.proc.wait(timeout=60) == 0
