"""The processes of a chaos run: a Redis server of its own, the API and the workers, each logging
JSON lines to its own file, with the faults an operator wants to survive (SIGKILL, Redis restarts).

Every process runs in a process group of its own (a worker and its vLLM engine process die
together) and gets SIGTERM if the chaos run itself dies. A process that exits without the run having
killed it is recorded in `died`: a fleet that rides out faults has none.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from textfleet.dev import kill_group, redis_server_argv, stop_groups, wait_for_redis
from textfleet.supervisor import die_with_parent
from workers.heartbeat import heartbeat_key

__all__ = ["Fleet", "incarnation", "role"]


def role(name: str) -> str:
    """The role of a process name: `worker-generate-r2` -> `worker-generate`."""
    return name.partition("-r")[0]


def incarnation(name: str) -> int:
    """How many times a role was replaced: `worker-generate-r2` -> 2, `worker-generate` -> 0."""
    return int(name.partition("-r")[2] or 0)


@dataclass
class Fleet:
    """Start, hurt and watch the processes of one fleet."""

    env: dict[str, str]
    log_dir: Path
    redis_port: int
    api_port: int
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: (name, exit code) of each process that exited without being killed or stopped by the run
    died: list[tuple[str, int]] = field(default_factory=list)
    redis_proc: subprocess.Popen[bytes] | None = None
    #: seconds from each Redis restart until jobs ran again (measured by the run)
    recoveries: list[float] = field(default_factory=list)
    _args: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    # --- Redis -------------------------------------------------------------------------------
    def start_redis(self) -> None:
        """A Redis without persistence: a restart really loses every message it held."""
        self.redis_proc = subprocess.Popen(
            redis_server_argv(self.redis_port),
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        wait_for_redis(self.redis_port, self.redis_proc)

    def kill_redis(self) -> None:
        if self.redis_proc is not None and self.redis_proc.poll() is None:
            self.redis_proc.kill()
            self.redis_proc.wait(timeout=30)

    def restart_redis(self, down_s: float = 1.0) -> None:
        """Kill Redis (SIGKILL: every message, heartbeat and lock is gone) and start it empty."""
        self.kill_redis()
        time.sleep(down_s)
        self.start_redis()

    # --- textfleet processes -----------------------------------------------------------------
    def spawn(self, name: str, *args: str) -> None:
        """Run `textfleet <args>` as `name`, logging to `<log_dir>/<name>.log`."""
        self._args[name] = args
        with (self.log_dir / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "textfleet", *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    def kill9(self, name: str) -> None:
        """SIGKILL a process and its group (a worker and its vLLM engine process), then start a new
        one in its place under a new name (`<name>-r<n>`), as an orchestrator would."""
        proc = self.procs.pop(name)
        kill_group(proc)
        proc.wait(timeout=30)
        self._replace(name)

    def check(self) -> None:
        """Record (and replace) every process that exited by itself since the last check."""
        for name, proc in list(self.procs.items()):
            code = proc.poll()
            if code is not None:
                self.died.append((name, code))
                self.procs.pop(name)
                self._replace(name)

    def _replace(self, name: str) -> None:
        """Start the next incarnation of a role: `worker-generate` -> `worker-generate-r1` -> `-r2`."""
        self.spawn(f"{role(name)}-r{incarnation(name) + 1}", *self._args[name])

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every process group, wait, SIGKILL what is left; Redis last."""
        stop_groups(self.procs, timeout)
        self.kill_redis()

    def wait_ready(self, workers: dict[str, int], timeout: float = 420.0) -> None:
        """Until the API is ready and `workers[queue]` heartbeats are present for each queue."""
        client = redis.Redis(port=self.redis_port)
        deadline = time.monotonic() + timeout
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited during start-up; see {self.log_dir / name}.log")
            try:
                api_ok = httpx.get(f"{self.api_url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                api_ok = False
            counts = {q: len(client.keys(heartbeat_key(q, "*"))) for q in workers}
            if api_ok and all(counts[q] >= n for q, n in workers.items()):
                client.close()
                return
            time.sleep(0.5)
        client.close()
        raise TimeoutError(f"fleet not ready after {timeout:.0f}s: {counts}")

    def finished_events(self) -> dict[str, int]:
        """How many times each job's terminal state was written (workers log `job.finished` only
        when their conditional update won), across every worker log, the killed ones' included."""
        counts: dict[str, int] = defaultdict(int)
        for path in self.log_dir.glob("worker-*.log"):
            for line in path.read_text(errors="replace").splitlines():
                if '"job.finished"' not in line:
                    continue
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if event.get("event") == "job.finished":
                    counts[event["job_id"]] += 1
        return counts
