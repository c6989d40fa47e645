"""The API served for real: `textfleet api` (uvicorn) as a subprocess, over real HTTP, with its log
(stdout and stderr) written to a file a test can read back."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

START_TIMEOUT_S = 60


@dataclass(frozen=True)
class LiveApi:
    """A running API process: its base URL and the file its whole output goes to."""

    url: str
    log_path: Path
    pid: int

    def log(self) -> str:
        """Everything the process has written so far."""
        return self.log_path.read_text(encoding="utf-8", errors="backslashreplace")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_api(log_path: Path, **env: str) -> Iterator[LiveApi]:
    """Serve the API from the current environment plus `env` (`TEXTFLEET_<NAME>` for each NAME=value)
    until the block ends; SIGTERM then, SIGKILL if it does not stop within 30 s."""
    port = _free_port()
    environ = {**os.environ, "PYTHONUNBUFFERED": "1"}
    environ.update({f"TEXTFLEET_{name.upper()}": value for name, value in env.items()})
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "textfleet", "api", "--host", "127.0.0.1", "--port", str(port)],
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the API exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not answer within {START_TIMEOUT_S}s")
            time.sleep(0.1)
        yield LiveApi(url=url, log_path=log_path, pid=proc.pid)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
