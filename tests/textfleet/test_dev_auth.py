"""`textfleet dev` runs open by default and says so loudly at start; `--auth` enforces API keys and
says how to create one. Checked on the real `textfleet dev` (webhook worker only: no models to load)
over real HTTP, and on the announcement itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rich.console import Console
from typer.testing import CliRunner

from shared.settings import Settings, get_settings
from textfleet.cli import app as cli
from textfleet.dev import DevStack, free_port

READY_MARK = "textfleet is ready: "


def _announcement(**kwargs: object) -> str:
    console = Console(record=True, width=200)
    stack = DevStack(Settings(), console=console, **kwargs)  # type: ignore[arg-type]
    stack.database_url = "sqlite:////tmp/dev/textfleet.db"
    stack.announce_auth()
    return console.export_text()


def test_open_mode_is_announced_and_a_public_bind_is_named() -> None:
    text = _announcement()
    assert "OPEN MODE" in text and "Authentication is OFF" in text and "textfleet dev --auth" in text
    assert "anyone who can reach it" not in text
    assert "anyone who can reach it" in _announcement(host="0.0.0.0")


def test_auth_mode_says_how_to_create_a_key_in_the_stack_database() -> None:
    text = _announcement(auth=True)
    assert "OPEN MODE" not in text
    assert "TEXTFLEET_DATABASE_URL=sqlite:////tmp/dev/textfleet.db" in text
    assert "textfleet keys create --tenant default --scopes admin" in text


class Dev:
    """A `textfleet dev` process and everything it printed."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        self.output: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout or []:
            self.output.append(line)
            if READY_MARK in line:
                self.ready.set()

    def wait_ready(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.5):
            assert self.proc.poll() is None, "textfleet dev exited:\n" + "".join(self.output[-40:])
            assert time.monotonic() < deadline, "not ready:\n" + "".join(self.output[-40:])
        return "".join(self.output)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def start_dev(tmp_path: Path) -> Iterator[object]:
    started: list[Dev] = []

    def start(*flags: str) -> tuple[Dev, str, Path]:
        data_dir = tmp_path / f"data-{len(started)}"
        env = {
            k: v for k, v in os.environ.items() if k not in {"TEXTFLEET_REDIS_URL", "TEXTFLEET_DATABASE_URL"}
        }
        env |= {"TEXTFLEET_DATA_DIR": str(data_dir), "TEXTFLEET_WORKER_DRAIN_S": "2", "PYTHONUNBUFFERED": "1"}
        env["TEXTFLEET_AUTH_ENABLED"] = "true"  # dev's own choice must win over the environment's
        port = free_port()
        argv = [sys.executable, "-m", "textfleet", "dev", "--port", str(port), "--queues", "webhooks", *flags]
        dev = Dev(argv, env)
        started.append(dev)
        dev.wait_ready(300)
        return dev, f"http://127.0.0.1:{port}", data_dir

    yield start
    for dev in started:
        dev.stop()


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_dev_is_open_by_default_and_enforces_keys_with_auth(
    start_dev: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert callable(start_dev)
    dev, url, _ = start_dev()
    output = "".join(dev.output)
    assert "OPEN MODE" in output and "Authentication is OFF" in output
    assert output.index("OPEN MODE") < output.index(READY_MARK), "said at start, before ready"
    assert "OPEN: no API keys checked" in output
    assert httpx.get(f"{url}/v1/jobs", timeout=10).status_code == 200
    assert httpx.get(f"{url}/metrics", timeout=10).status_code == 200
    dev.stop()

    dev, url, data_dir = start_dev("--auth")
    output = "".join(dev.output)
    assert "OPEN MODE" not in output and "authentication ON" in output
    assert "textfleet keys create --tenant default --scopes admin" in output
    refused = httpx.get(f"{url}/v1/jobs", timeout=10)
    assert refused.status_code == 401 and "www-authenticate" in refused.headers
    # The hint works: a key made in the stack's database is accepted by its API.
    monkeypatch.setenv("TEXTFLEET_DATABASE_URL", f"sqlite:///{data_dir.resolve() / 'textfleet.db'}")
    get_settings.cache_clear()
    created = CliRunner().invoke(cli, ["keys", "create", "--tenant", "default", "--scopes", "admin"])
    get_settings.cache_clear()
    assert created.exit_code == 0, created.output
    bearer = {"Authorization": f"Bearer {created.stdout.strip()}"}
    assert httpx.get(f"{url}/v1/jobs", headers=bearer, timeout=10).status_code == 200
