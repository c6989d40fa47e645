"""Sampling profiles of the fleet's processes during a benchmark phase (py-spy), and their top entries.

`Profiler` runs `py-spy record --format raw --nonblocking` against each named process while a phase
runs and stops it (SIGINT: py-spy writes its file) when the phase ends. Raw files hold collapsed
stacks, one line per distinct stack: `outer (file.py:12);inner (file.py:40) <samples>`. `top_entries`
reads one back into the functions that used the CPU: by self samples (the function was running) and
by total samples (it was on the stack), with line numbers dropped so a function is one entry.

Only the thread holding the GIL is sampled (`--gil`): a thread waiting on a socket, a lock or a
condition releases the GIL, so the shares are of the Python process's busy time, where the time
goes that no other thread of the process can use (py-spy's own idle detection, which decides from
the threads' OS state, counted many waits in psycopg, kombu's poll and the asyncio loop as running).
It needs ptrace rights over the target (root, or the same user with
`kernel.yama.ptrace_scope` 0) and is installed with the `bench` extra.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = ["PROJECT_PACKAGES", "Profile", "Profiler", "render_top", "top_entries"]

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


@dataclass(frozen=True)
class Profile:
    """A profile's samples per function: `self_samples` (running it) and `total_samples` (on the stack)."""

    samples: int
    self_samples: Counter[str]
    total_samples: Counter[str]


def _function(frame: str) -> str:
    """`inner (pkg/mod.py:40)` -> `inner (pkg/mod.py)`."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    return f"{match['func']} ({match['file']})"


def top_entries(lines: Iterable[str]) -> Profile:
    """Aggregate py-spy raw (collapsed-stack) lines by function."""
    self_samples: Counter[str] = Counter()
    total_samples: Counter[str] = Counter()
    samples = 0
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(frame) for frame in stack.split(";") if frame]
        if not frames:
            continue
        samples += count
        self_samples[frames[-1]] += count
        for name in set(frames):
            total_samples[name] += count
    return Profile(samples, self_samples, total_samples)


#: Where this project's own modules live (py-spy names files relative to their import root).
PROJECT_PACKAGES = ("api/", "workers/", "shared/", "textfleet/", "bench/")


def render_top(profile: Profile, title: str, limit: int = 25) -> str:
    """The `limit` top functions by self and by total samples, and this project's own functions by
    total samples (what each costs with everything it calls), as text (percent of all samples)."""
    out = [f"# {title}: {profile.samples} samples (py-spy --gil: the thread holding the GIL)", ""]
    ours: Counter[str] = Counter(
        {name: count for name, count in profile.total_samples.items() if _in_project(name)}
    )
    views = (
        ("self", profile.self_samples),
        ("total (on the stack)", profile.total_samples),
        ("total, this project's functions", ours),
    )
    for heading, counter in views:
        out.append(f"## top {limit} by {heading}")
        for name, count in counter.most_common(limit):
            share = 100.0 * count / profile.samples if profile.samples else 0.0
            out.append(f"{share:6.1f}%  {count:7d}  {name}")
        out.append("")
    return "\n".join(out)


def _in_project(function: str) -> bool:
    match = _FRAME.match(function)
    return match is not None and match["file"].startswith(PROJECT_PACKAGES)


class Profiler:
    """py-spy recording each of `pids` (name -> pid) into `out_dir/<label>-<name>.raw` while in use;
    on exit the top entries are written next to them as `<label>-<name>.txt`."""

    def __init__(self, pids: Mapping[str, int], out_dir: Path, label: str, *, rate: int = 100) -> None:
        beside = Path(sys.executable).with_name("py-spy")  # a virtual environment not on PATH
        executable = shutil.which("py-spy") or (str(beside) if beside.is_file() else None)
        if executable is None:
            raise RuntimeError("py-spy is not installed (pip install 'textfleet[bench]')")
        self.executable = executable
        self.pids = dict(pids)
        self.out_dir = out_dir
        self.label = label
        self.rate = rate
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.summaries: dict[str, Path] = {}

    def raw_path(self, name: str) -> Path:
        return self.out_dir / f"{self.label}-{name}.raw"

    def __enter__(self) -> Profiler:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in self.pids.items():
            argv = [self.executable, "record", "--pid", str(pid), "--rate", str(self.rate)]
            argv += ["--gil", "--format", "raw", "--nonblocking", "--output", str(self.raw_path(name))]
            self.processes[name] = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # py-spy writes its file and exits
        for name, process in self.processes.items():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            raw = self.raw_path(name)
            if raw.is_file():
                with raw.open() as lines:
                    profile = top_entries(lines)
                summary = raw.with_suffix(".txt")
                summary.write_text(render_top(profile, f"{self.label}: {name}") + "\n")
                self.summaries[name] = summary
