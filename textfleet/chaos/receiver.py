"""The webhook receiver of a chaos run: a local HTTP server that verifies each delivery's Standard
Webhooks signature and records, per (job, event), the `webhook-id`s it arrived under and when.

Hand-written on `http.server` because it must run without the test tools installed (an operator's
`textfleet chaos`); the signature check is the `standardwebhooks` library's.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

__all__ = ["ChaosReceiver"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    receiver: ChaosReceiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a killed webhook worker resets its keep-alive connections, which is expected here."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: the webhook worker reuses its connections

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        self.server.receiver.record({k.lower(): v for k, v in self.headers.items()}, body)
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


class ChaosReceiver:
    """Use as a context manager; `url` is where the fleet sends its webhooks."""

    def __init__(self, secret: str) -> None:
        self._verifier = Webhook(secret)
        self._lock = threading.Lock()
        #: (job id, event type) -> webhook-ids it arrived under
        self.ids: dict[tuple[str, str], set[str]] = defaultdict(set)
        #: (job id, event type) -> wall-clock time of its first arrival
        self.first_seen: dict[tuple[str, str], float] = {}
        self.bad_signatures = 0
        self.requests = 0
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.receiver = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="chaos-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def record(self, headers: dict[str, str], body: bytes) -> None:
        now = time.time()
        try:
            self._verifier.verify(body, headers)
            payload = json.loads(body)
            key = (str(payload["data"]["id"]), str(payload["type"]))
        except (WebhookVerificationError, ValueError, KeyError, TypeError):
            with self._lock:
                self.requests += 1
                self.bad_signatures += 1
            return
        with self._lock:
            self.requests += 1
            self.ids[key].add(headers.get("webhook-id", ""))
            self.first_seen.setdefault(key, now)

    def __enter__(self) -> ChaosReceiver:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
