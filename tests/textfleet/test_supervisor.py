"""textfleet.supervisor: one pinned child per GPU, restarts with backoff, drains on SIGTERM.

Real processes throughout: the supervisor runs in a driver process (so SIGTERM and its return code
are real), its children are tiny `python -c` scripts that record what they saw in a tmp directory.
No GPU needed: pinning is the environment each child gets.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from textfleet.supervisor import GPUSpecError, parse_gpus, supervise

REPO = Path(__file__).resolve().parents[2]

#: A child: records its environment in ready-<gpu>-<pid>.json, then idles. On SIGTERM it writes
#: term-<gpu>-<pid> and exits 0. CHILD_MODE=crash-once: the first child per GPU exits 3 at once;
#: crash-always: every child appends its start time to starts-<gpu> and exits 1; ignore-term: it
#: ignores SIGTERM (the supervisor must kill it).
CHILD = r"""
import json, os, pathlib, signal, sys, time
out, gpu = pathlib.Path(sys.argv[1]), sys.argv[2]
mode = os.environ.get("CHILD_MODE", "")
if mode == "crash-always":
    with open(out / f"starts-{gpu}", "a") as f:
        f.write(f"{time.monotonic()}\n")
    sys.exit(1)
if mode == "crash-once" and not (out / f"crashed-{gpu}").exists():
    (out / f"crashed-{gpu}").write_text("")
    sys.exit(3)
def on_term(signum, frame):
    (out / f"term-{gpu}-{os.getpid()}").write_text("")
    sys.exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "ignore-term" else on_term)
keys = ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER")
keys += ("TEXTFLEET_WORKER_HTTP_PORT", "TEXTFLEET_WORKER_HOSTNAME")
info = {k: os.environ.get(k) for k in keys}
info["pid"] = os.getpid()
tmp = out / f".ready-{gpu}-{os.getpid()}"
tmp.write_text(json.dumps(info))
tmp.rename(out / f"ready-{gpu}-{os.getpid()}.json")
while True:
    time.sleep(0.05)
"""

#: The supervisor's process: argv[1] is a JSON config; exits with supervise()'s return value.
DRIVER = r"""
import json, sys
from textfleet.supervisor import supervise
cfg = json.loads(sys.argv[1])
rc = supervise(
    lambda gpu: [sys.executable, "-c", cfg["child"], cfg["out"], gpu],
    cfg["gpus"],
    restart_backoff_s=cfg["backoff"],
    max_backoff_s=cfg["max_backoff"],
    drain_s=cfg["drain_s"],
    drain_margin_s=0.0,
)
sys.exit(rc)
"""


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s")


def _ready(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("ready-*.json"))]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def run_supervisor(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start the supervisor in a driver process; kills it (and its session's children) at teardown."""
    started: list[subprocess.Popen[str]] = []

    def start(
        gpus: list[str],
        *,
        mode: str = "",
        backoff: float = 0.05,
        max_backoff: float = 60.0,
        drain_s: float = 10.0,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.Popen[str]:
        config = {
            "child": CHILD,
            "out": str(tmp_path),
            "gpus": gpus,
            "backoff": backoff,
            "max_backoff": max_backoff,
            "drain_s": drain_s,
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TEXTFLEET_", "CUDA_"))}
        env.update({"CHILD_MODE": mode, "PYTHONPATH": str(REPO), **(extra_env or {})})
        proc = subprocess.Popen(
            [sys.executable, "-c", DRIVER, json.dumps(config)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
    for info in _ready(tmp_path):  # children left by a failed test
        if _alive(info["pid"]):
            os.kill(info["pid"], signal.SIGKILL)


def _stop(proc: subprocess.Popen[str], timeout: float = 30.0) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=timeout)
    return proc.returncode, output


# --- parse_gpus ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("0", ["0"]),
        ("0,1", ["0", "1"]),
        (" 2 , 3 ", ["2", "3"]),
        ("GPU-8f6e2b1c-1d2e-4f5a-9b8c-7d6e5f4a3b2c", ["GPU-8f6e2b1c-1d2e-4f5a-9b8c-7d6e5f4a3b2c"]),
    ],
)
def test_parse_gpus_lists(spec: str, expected: list[str]) -> None:
    assert parse_gpus(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [("", "empty"), ("0,0", "named twice"), ("0,x", "not a GPU index"), ("0,,1", "not a GPU index")],
)
def test_parse_gpus_rejects_bad_lists(spec: str, message: str) -> None:
    with pytest.raises(GPUSpecError, match=message):
        parse_gpus(spec)


def _fake_nvidia_smi(bin_dir: Path, script: str) -> None:
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\n{script}\n")
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)


def test_parse_gpus_all_uses_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Answers only the exact query the supervisor documents.
    _fake_nvidia_smi(
        tmp_path,
        '[ "$1" = "--query-gpu=index" ] && [ "$2" = "--format=csv,noheader" ] || exit 2\n'
        'printf "0\\n1\\n2\\n"',
    )
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert parse_gpus("all") == ["0", "1", "2"]
    assert parse_gpus("ALL") == ["0", "1", "2"]


def test_parse_gpus_all_prefers_cuda_visible_devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_nvidia_smi(tmp_path, 'printf "0\\n1\\n2\\n3\\n"')
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert parse_gpus("all") == ["2", "3"]


def test_parse_gpus_all_without_nvidia_smi_uses_cuda_visible_devices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    assert parse_gpus("all") == ["1", "0"]


def test_parse_gpus_all_without_any_source_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(GPUSpecError, match=r"nvidia-smi is not on PATH and CUDA_VISIBLE_DEVICES is not set"):
        parse_gpus("all")


def test_parse_gpus_all_with_hidden_gpus_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    with pytest.raises(GPUSpecError, match="makes no GPU visible"):
        parse_gpus("all")


def test_parse_gpus_all_when_nvidia_smi_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_nvidia_smi(tmp_path, 'echo "NVIDIA-SMI has failed: no driver" >&2; exit 9')
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(GPUSpecError, match=r"exited with 9: NVIDIA-SMI has failed"):
        parse_gpus("all")


def test_supervise_needs_gpus() -> None:
    with pytest.raises(GPUSpecError):
        supervise(lambda gpu: ["true"], [])
    with pytest.raises(GPUSpecError):
        supervise(lambda gpu: ["true"], ["0", "0"])


# --- supervise -----------------------------------------------------------------------------------


def test_each_child_is_pinned_to_its_gpu_and_drains_on_sigterm(
    tmp_path: Path, run_supervisor: Callable[..., subprocess.Popen[str]]
) -> None:
    proc = run_supervisor(
        ["0", "1", "3"],
        extra_env={"TEXTFLEET_WORKER_HTTP_PORT": "9100", "TEXTFLEET_WORKER_HOSTNAME": "generate@node-a"},
    )
    _wait_for(lambda: len(_ready(tmp_path)) == 3)
    children = {info["CUDA_VISIBLE_DEVICES"]: info for info in _ready(tmp_path)}
    assert set(children) == {"0", "1", "3"}
    assert [children[g]["TEXTFLEET_WORKER_HTTP_PORT"] for g in ("0", "1", "3")] == ["9100", "9101", "9102"]
    assert [children[g]["TEXTFLEET_WORKER_HOSTNAME"] for g in ("0", "1", "3")] == [
        "generate@node-a-gpu0",
        "generate@node-a-gpu1",
        "generate@node-a-gpu3",
    ]
    assert {info["CUDA_DEVICE_ORDER"] for info in children.values()} == {"PCI_BUS_ID"}

    code, output = _stop(proc)
    assert code == 0, output
    for gpu, info in children.items():
        assert (tmp_path / f"term-{gpu}-{info['pid']}").exists(), f"child on GPU {gpu} got no SIGTERM"
        assert not _alive(info["pid"])
    assert "supervisor.child_killed" not in output
    # Nothing restarted a child that was asked to stop.
    assert len(_ready(tmp_path)) == 3


def test_without_a_base_port_children_get_none(
    tmp_path: Path, run_supervisor: Callable[..., subprocess.Popen[str]]
) -> None:
    proc = run_supervisor(["0", "1"])
    _wait_for(lambda: len(_ready(tmp_path)) == 2)
    infos = _ready(tmp_path)
    assert {info["TEXTFLEET_WORKER_HTTP_PORT"] for info in infos} == {None}
    hostnames = {info["TEXTFLEET_WORKER_HOSTNAME"] for info in infos}
    assert len(hostnames) == 2
    assert all(h.endswith(("-gpu0", "-gpu1")) for h in hostnames)
    assert _stop(proc)[0] == 0


def test_a_crashed_child_is_restarted_on_the_same_gpu(
    tmp_path: Path, run_supervisor: Callable[..., subprocess.Popen[str]]
) -> None:
    proc = run_supervisor(
        ["0", "1"], mode="crash-once", extra_env={"TEXTFLEET_WORKER_HOSTNAME": "generate@node-a"}
    )
    _wait_for(lambda: len(_ready(tmp_path)) == 2)
    assert (tmp_path / "crashed-0").exists()
    assert (tmp_path / "crashed-1").exists()
    children = {info["CUDA_VISIBLE_DEVICES"]: info for info in _ready(tmp_path)}
    assert set(children) == {"0", "1"}
    # A restarted child gets a new identity: it must not look like the one that died.
    assert children["0"]["TEXTFLEET_WORKER_HOSTNAME"] == "generate@node-a-gpu0-r1"
    code, output = _stop(proc)
    assert code == 0, output
    assert "supervisor.child_exited" in output


def test_restarts_back_off_exponentially(
    tmp_path: Path, run_supervisor: Callable[..., subprocess.Popen[str]]
) -> None:
    proc = run_supervisor(["0"], mode="crash-always", backoff=0.1, max_backoff=0.4)
    starts_file = tmp_path / "starts-0"

    def starts() -> list[float]:
        return [float(x) for x in starts_file.read_text().split()] if starts_file.exists() else []

    _wait_for(lambda: len(starts()) >= 5)
    assert _stop(proc)[0] == 0
    times = starts()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Delays 0.1, 0.2, 0.4, 0.4 (capped); sleeps are never early, so these are lower bounds.
    for gap, delay in zip(gaps, [0.1, 0.2, 0.4, 0.4], strict=False):
        assert gap >= delay * 0.9, (gaps, delay)


def test_a_child_that_ignores_sigterm_is_killed_after_the_drain(
    tmp_path: Path, run_supervisor: Callable[..., subprocess.Popen[str]]
) -> None:
    proc = run_supervisor(["0"], mode="ignore-term", drain_s=0.5)
    _wait_for(lambda: len(_ready(tmp_path)) == 1)
    pid = _ready(tmp_path)[0]["pid"]
    started = time.monotonic()
    code, output = _stop(proc)
    assert code == 1, output
    assert time.monotonic() - started >= 0.5
    assert "supervisor.child_killed" in output
    assert not _alive(pid)
