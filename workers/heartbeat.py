"""A worker's liveness: a heartbeat key in Redis and a side HTTP port with /healthz and /metrics.

Both are driven by a thread of their own, so a worker busy with long jobs still looks alive; a
wedged process (the heartbeat thread stops) does not.
"""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.constants import WORKER_HEARTBEAT_PREFIX
from shared.logging import safe_message
from workers.runtime import WorkerRuntime

__all__ = ["Heartbeat", "heartbeat_key", "serve_side_port"]

log = structlog.get_logger(__name__)


def heartbeat_key(queue: str, hostname: str) -> str:
    """`textfleet:worker:<queue>:<hostname>`: present while the worker is alive."""
    return f"{WORKER_HEARTBEAT_PREFIX}{queue}:{hostname}"


class Heartbeat:
    """Writes the worker's heartbeat keys every `interval` seconds on a daemon thread."""

    def __init__(self, runtime: WorkerRuntime) -> None:
        self.runtime = runtime
        self.interval = runtime.settings.worker_heartbeat_s
        self.last_beat = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="textfleet-heartbeat", daemon=True)

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def beat(self) -> None:
        """Write the heartbeat keys once."""
        payload = json.dumps(
            {
                "hostname": self.runtime.hostname,
                "pid": os.getpid(),
                "queues": [q.value for q in self.runtime.queues],
                "running": len(self.runtime.in_flight),
                "http_port": self.runtime.settings.worker_http_port or None,
                "at": time.time(),
            }
        )
        ttl_ms = int(self.interval * 3 * 1000)
        with self.runtime.redis.pipeline(transaction=False) as pipe:
            for queue in self.runtime.queues:
                pipe.set(heartbeat_key(queue.value, self.runtime.hostname), payload, px=ttl_ms)
            pipe.execute()
        self.last_beat = time.monotonic()

    @property
    def healthy(self) -> bool:
        """Whether a heartbeat was written recently."""
        return time.monotonic() - self.last_beat < self.interval * 3

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception as exc:
                log.warning("worker.heartbeat_failed", error=safe_message(exc))

    def stop(self) -> None:
        """Stop beating and remove the keys (a clean exit)."""
        self._stop.set()
        try:
            self.runtime.redis.delete(
                *(heartbeat_key(q.value, self.runtime.hostname) for q in self.runtime.queues)
            )
        except Exception as exc:
            log.warning("worker.heartbeat_cleanup_failed", error=safe_message(exc))


def serve_side_port(heartbeat: Heartbeat, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve GET /healthz (200 while the heartbeat is fresh, else 503) and GET /metrics."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                ok = heartbeat.healthy
                body = json.dumps({"status": "ok" if ok else "stale"}).encode()
                self._reply(200 if ok else 503, body, "application/json")
            elif self.path == "/metrics":
                self._reply(200, generate_latest(), CONTENT_TYPE_LATEST)
            else:
                self._reply(
                    404, b'{"error": {"code": "not_found", "message": "no such path"}}', "application/json"
                )

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="textfleet-side-port", daemon=True).start()
    log.info("worker.side_port", port=port)
    return server
