"""The real stack for end-to-end tests: `textfleet dev` as a subprocess, with the real vLLM engine,
the real classifiers, real Redis and a real database (PostgreSQL, then SQLite).

One stack per database variant; each starts one engine, so a session starts two engines in turn.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.utils.services import postgres_database, redis_database
from textfleet.dev import free_port

READY_MARK = "textfleet is ready:"
START_TIMEOUT_S = 420


@pytest.fixture(scope="session", params=["postgresql", "sqlite"])
def e2e_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh, empty database of the stack's own (`textfleet dev` migrates it)."""
    if request.param == "postgresql":
        with postgres_database() as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('e2e-sqlite') / 'textfleet.db'}"


@pytest.fixture(scope="session")
def stack(e2e_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a running fleet: API + generate worker + classify worker."""
    with redis_database() as redis_url:
        data_dir: Path = tmp_path_factory.mktemp("e2e-data")
        port = free_port()
        env = {
            **os.environ,
            "TEXTFLEET_DATABASE_URL": e2e_database_url,
            "TEXTFLEET_REDIS_URL": redis_url,
            "TEXTFLEET_DATA_DIR": str(data_dir),
            "TEXTFLEET_CPU_KVCACHE_GIB": "1",
            "TEXTFLEET_MAX_NUM_SEQS": "16",
            "TEXTFLEET_MAX_INPUT_CHARS": "32000",
            "PYTHONUNBUFFERED": "1",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "textfleet", "dev", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT_S
        url = None
        while url is None:
            if proc.poll() is not None:
                pytest.fail(f"textfleet dev exited with {proc.returncode} before it was ready")
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                pytest.fail(f"textfleet dev not ready within {START_TIMEOUT_S}s")
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if READY_MARK in line:
                url = line.split(READY_MARK, 1)[1].split()[0]
        try:
            yield url
        finally:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the stack stops its children cleanly
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                pytest.fail("textfleet dev did not stop within 90s of Ctrl-C")
            assert proc.returncode == 0, f"textfleet dev exited with {proc.returncode} after Ctrl-C"


@pytest.fixture
def client(stack: str) -> Iterator[httpx.Client]:
    """An HTTP client on the stack's API."""
    with httpx.Client(base_url=stack, timeout=120) as http:
        yield http
