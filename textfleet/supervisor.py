"""One worker process per GPU on a multi-GPU host: `textfleet worker --gpus 0,1|all`.

The supervisor never imports torch or vLLM and never initialises CUDA: a CUDA context does not
survive a fork, and each child must see exactly one device. It only starts children, each with
`CUDA_VISIBLE_DEVICES=<gpu>` (so the child's engine sees one GPU, as device 0), its own side port
(`TEXTFLEET_WORKER_HTTP_PORT` + index) and its own `TEXTFLEET_WORKER_HOSTNAME` (suffix `-gpu<id>`,
plus `-r<n>` after the n-th restart so a restarted child never inherits a dead one's identity).

A child that exits while the supervisor runs is restarted after an exponential backoff
(`restart_backoff_s`, doubling up to `max_backoff_s`; reset once a child has stayed up
`stable_after_s`). On SIGTERM or SIGINT the supervisor sends SIGTERM to every child, which drains
(TEXTFLEET_WORKER_DRAIN_S), waits up to `drain_s + drain_margin_s`, then SIGKILLs what is left. A
second signal while draining kills at once.

On Kubernetes the device plugin already gives each pod one GPU (one worker per pod); this is for
VMs and bare metal, where one host runs a worker per GPU.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any

import structlog

from shared.backoff import backoff_s, doubling

__all__ = ["GPUSpecError", "die_with_parent", "parse_gpus", "supervise"]

log = structlog.get_logger(__name__)

#: A device name CUDA_VISIBLE_DEVICES accepts: an index, a GPU UUID or a MIG instance UUID.
_GPU_ID = re.compile(r"\d+|GPU-[0-9A-Za-z-]+|MIG-[0-9A-Za-z/-]+")
_NVIDIA_SMI_QUERY = ["--query-gpu=index", "--format=csv,noheader"]
_POLL_S = 0.1


class GPUSpecError(ValueError):
    """A `--gpus` value that names no usable GPU."""


def parse_gpus(spec: str) -> list[str]:
    """The GPUs named by `spec`: a comma-separated list ("0,1", UUIDs accepted) or "all".

    "all" means the GPUs this process may use: those in CUDA_VISIBLE_DEVICES when it is set (an
    operator's restriction wins; nvidia-smi ignores it), else every GPU `nvidia-smi` lists, else a
    GPUSpecError. Nothing here touches CUDA.
    """
    text = spec.strip()
    if not text:
        raise GPUSpecError("--gpus is empty: give GPU indices such as '0,1', or 'all'")
    if text.lower() == "all":
        return _all_gpus()
    gpus = [part.strip() for part in text.split(",")]
    bad = [gpu for gpu in gpus if not _GPU_ID.fullmatch(gpu)]
    if bad:
        raise GPUSpecError(
            f"--gpus {spec!r}: not a GPU index or UUID: {', '.join(repr(b) for b in bad)}; "
            "give comma-separated indices such as '0,1', or 'all'"
        )
    duplicates = sorted({gpu for gpu in gpus if gpus.count(gpu) > 1})
    if duplicates:
        raise GPUSpecError(f"--gpus {spec!r}: GPU {', '.join(duplicates)} named twice (one worker per GPU)")
    return gpus


def _all_gpus() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        gpus = [gpu.strip() for gpu in visible.split(",") if gpu.strip()]
        # CUDA stops at the first invalid entry ("-1" is the usual way of hiding every GPU).
        usable: list[str] = []
        for gpu in gpus:
            if not _GPU_ID.fullmatch(gpu):
                break
            usable.append(gpu)
        if not usable:
            raise GPUSpecError(
                f"--gpus all: CUDA_VISIBLE_DEVICES={visible!r} makes no GPU visible; "
                "unset it or name the GPUs with --gpus 0,1"
            )
        return usable
    smi = shutil.which("nvidia-smi")
    if smi is None:
        raise GPUSpecError(
            "--gpus all: cannot enumerate GPUs: nvidia-smi is not on PATH and CUDA_VISIBLE_DEVICES "
            "is not set; name the GPUs with --gpus 0,1"
        )
    try:
        result = subprocess.run(
            [smi, *_NVIDIA_SMI_QUERY], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GPUSpecError(f"--gpus all: nvidia-smi failed: {exc}") from exc
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise GPUSpecError(f"--gpus all: nvidia-smi exited with {result.returncode}: {detail}")
    gpus = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if not gpus:
        raise GPUSpecError("--gpus all: nvidia-smi lists no GPU")
    return gpus


@dataclass
class _Child:
    """One GPU's slot: the current process (if any) and its restart state."""

    index: int
    gpu: str
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    next_start_at: float = 0.0
    failures: int = 0
    starts: int = 0


def _child_env(
    base: Mapping[str, str], child: _Child, base_port: int | None, hostname: str
) -> dict[str, str]:
    env = dict(base)
    env["CUDA_VISIBLE_DEVICES"] = child.gpu
    # nvidia-smi numbers GPUs in PCI bus order, CUDA by default fastest-first: make them agree.
    env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    if base_port is not None:
        env["TEXTFLEET_WORKER_HTTP_PORT"] = str(base_port + child.index)
    suffix = f"-gpu{re.sub(r'[^0-9A-Za-z]+', '-', child.gpu)}"
    if child.starts > 0:
        suffix += f"-r{child.starts}"
    env["TEXTFLEET_WORKER_HOSTNAME"] = f"{hostname}{suffix}"
    return env


def die_with_parent() -> None:
    """In the child, before exec: get SIGTERM (a drain) if the supervisor itself dies (Linux)."""
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        # Without prctl (not glibc/musl) the child just outlives a killed supervisor.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def supervise(
    argv_for_gpu: Callable[[str], list[str]],
    gpus: list[str],
    *,
    restart_backoff_s: float = 1.0,
    max_backoff_s: float = 60.0,
    stable_after_s: float = 60.0,
    drain_s: float = 60.0,
    drain_margin_s: float = 15.0,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run `argv_for_gpu(gpu)` once per GPU in `gpus`, pinned to it, until SIGTERM/SIGINT.

    Returns 0 when every child stopped within `drain_s + drain_margin_s` of the signal, 1 when one
    had to be killed. Must run in the main thread (it installs signal handlers, and restores the
    previous ones on return).
    """
    if not gpus:
        raise GPUSpecError("no GPU to supervise")
    if len(set(gpus)) != len(gpus):
        raise GPUSpecError(f"GPU named twice in {gpus}: one worker per GPU")
    base_env: Mapping[str, str] = os.environ if env is None else env
    port_text = base_env.get("TEXTFLEET_WORKER_HTTP_PORT")
    base_port = int(port_text) if port_text else None
    hostname = base_env.get("TEXTFLEET_WORKER_HOSTNAME") or f"worker@{socket.gethostname()}"
    children = [_Child(index=i, gpu=gpu) for i, gpu in enumerate(gpus)]
    signals: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        signals.append(signum)

    previous: dict[int, Any] = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    log.info(
        "supervisor.start",
        gpus=gpus,
        base_port=base_port,
        drain_s=drain_s,
        restart_backoff_s=restart_backoff_s,
    )
    try:
        while not signals:
            now = time.monotonic()
            for child in children:
                if child.proc is None:
                    if now >= child.next_start_at:
                        _start(child, argv_for_gpu, base_env, base_port, hostname)
                    continue
                code = child.proc.poll()
                if code is None:
                    continue
                uptime = now - child.started_at
                if uptime >= stable_after_s:
                    child.failures = 0
                child.failures += 1
                delay = backoff_s(child.failures, doubling(restart_backoff_s, max_backoff_s))
                log.warning(
                    "supervisor.child_exited",
                    gpu=child.gpu,
                    pid=child.proc.pid,
                    exit_code=code,
                    uptime_s=round(uptime, 3),
                    restart_in_s=round(delay, 3),
                    failures=child.failures,
                )
                child.proc = None
                child.next_start_at = now + delay
            time.sleep(_POLL_S)
        return _shutdown(children, signals, drain_s + drain_margin_s)
    finally:
        for child in children:  # only on an unexpected error: _shutdown leaves none running
            if child.proc is not None and child.proc.poll() is None:
                child.proc.kill()
                child.proc.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start(
    child: _Child,
    argv_for_gpu: Callable[[str], list[str]],
    base_env: Mapping[str, str],
    base_port: int | None,
    hostname: str,
) -> None:
    env = _child_env(base_env, child, base_port, hostname)
    argv = argv_for_gpu(child.gpu)
    # Own session: a Ctrl-C on the terminal reaches the supervisor only, which then drains the
    # children with SIGTERM.
    child.proc = subprocess.Popen(argv, env=env, start_new_session=True, preexec_fn=die_with_parent)
    child.started_at = time.monotonic()
    child.starts += 1
    log.info(
        "supervisor.child_started",
        gpu=child.gpu,
        pid=child.proc.pid,
        port=env.get("TEXTFLEET_WORKER_HTTP_PORT"),
        hostname=env["TEXTFLEET_WORKER_HOSTNAME"],
        start=child.starts,
    )


def _shutdown(children: list[_Child], signals: list[int], deadline_s: float) -> int:
    running = [c for c in children if c.proc is not None and c.proc.poll() is None]
    log.info(
        "supervisor.draining",
        signal=signal.Signals(signals[0]).name,
        children=len(running),
        deadline_s=deadline_s,
    )
    for child in running:
        assert child.proc is not None
        child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + deadline_s
    handled = len(signals)
    while running and time.monotonic() < deadline and len(signals) == handled:
        time.sleep(_POLL_S)
        for child in [c for c in running if c.proc is not None and c.proc.poll() is not None]:
            assert child.proc is not None
            log.info(
                "supervisor.child_stopped", gpu=child.gpu, pid=child.proc.pid, exit_code=child.proc.returncode
            )
            running.remove(child)
    for child in running:
        assert child.proc is not None
        why = "second signal" if len(signals) > handled else "drain deadline passed"
        log.error("supervisor.child_killed", gpu=child.gpu, pid=child.proc.pid, reason=why)
        child.proc.kill()
        child.proc.wait()
    log.info("supervisor.stopped", killed=len(running))
    return 1 if running else 0
