"""A real local HTTP receiver for webhook tests: a threaded `http.server` on 127.0.0.1:<free port>.

It records every request (method, path, headers, body) and answers according to its knobs:
`fail_first` (answer `fail_status` to the first N requests of each `webhook-id`), `redirect_to`
(answer 302 with that Location: a path here, or an absolute URL), `delay_s` (sleep before
answering, e.g. past a client timeout).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["Received", "WebhookReceiver"]


@dataclass(frozen=True)
class Received:
    """One request the receiver got."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the listen backlog: many concurrent deliveries connect at once
    block_on_close = False  # a handler still sleeping must not hold up close()
    receiver: WebhookReceiver


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def _handle(self) -> None:
        try:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            received = Received(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            status, extra = self.server.receiver._answer(received)
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        except OSError:  # the client gave up (timeout) and closed the connection
            pass

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return


class WebhookReceiver:
    """Use as a context manager; `url()` is where to send webhooks."""

    def __init__(self) -> None:
        self.fail_first = 0
        self.fail_status = 500
        self.redirect_to: str | None = None
        self.delay_s = 0.0
        self._lock = threading.Lock()
        self._requests: list[Received] = []
        self._seen: Counter[str] = Counter()
        self._stop = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.receiver = self
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="webhook-receiver",
            daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def received(self, path: str | None = None) -> list[Received]:
        """Requests so far (optionally only those to `path`), in arrival order."""
        with self._lock:
            return [r for r in self._requests if path is None or r.path == path]

    def _answer(self, received: Received) -> tuple[int, dict[str, str]]:
        with self._lock:
            self._requests.append(received)
            msg_id = received.headers.get("webhook-id", "")
            self._seen[msg_id] += 1
            seen = self._seen[msg_id]
        if self.delay_s:
            self._stop.wait(self.delay_s)
        if self.redirect_to is not None and received.path != self.redirect_to:
            location = self.redirect_to if "://" in self.redirect_to else self.url(self.redirect_to)
            return 302, {"location": location}
        if seen <= self.fail_first:
            return self.fail_status, {}
        return 200, {}

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()  # wake sleeping handlers
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
