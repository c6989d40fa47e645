"""The webhook receiver of `textfleet bench --scenario webhooks`: a uvicorn process (uvloop, httptools,
keep-alive) listening on several ports, one endpoint each, that answers at once, or hangs on the
ports it is told to. It records, per request, the `webhook-id`, the receipt time and whether the
Standard Webhooks signature verified; `GET /__stats` returns them (and resets with `?reset=1`),
`GET /__count` how many there are.

Run: `python -m bench.receiver --ports 9001,9002 --hang 9002 --secret whsec_...`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
from typing import Any

__all__ = ["ReceiverApp", "main"]

Scope = dict[str, Any]


class ReceiverApp:
    """A minimal ASGI app (no framework: the receiver must not be the bottleneck)."""

    def __init__(self, secret: str, hang_ports: set[int], hang_s: float) -> None:
        from standardwebhooks import Webhook

        self.verifier = Webhook(secret)
        self.hang_ports = hang_ports
        self.hang_s = hang_s
        self.records: list[tuple[str, float, int, bool]] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        port = int(scope["server"][1])
        if scope["path"] == "/__count":
            await _reply(send, 200, str(len(self.records)).encode())
            return
        if scope["path"] == "/__stats":
            records = self.records
            if b"reset=1" in scope.get("query_string", b""):
                self.records = []
            body = json.dumps({"records": records}).encode()
            await _reply(send, 200, body)
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        received_at = time.time()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if port in self.hang_ports:
            await asyncio.sleep(self.hang_s)
            await _reply(send, 200, b"late")
            return
        try:
            self.verifier.verify(b"".join(chunks), headers)
            valid = True
        except Exception:
            valid = False
        self.records.append((headers.get("webhook-id", ""), received_at, port, valid))
        await _reply(send, 200, b"ok")


async def _reply(send: Any, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ports", required=True, help="comma-separated ports, one endpoint each")
    parser.add_argument("--hang", default="", help="comma-separated ports that hang")
    parser.add_argument("--hang-s", type=float, default=60.0)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()
    import uvicorn

    ports = [int(p) for p in args.ports.split(",")]
    hang = {int(p) for p in args.hang.split(",") if p}
    sockets = []
    for port in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: the response's head and body go out at once (without it,
        # Nagle holds the body until the client's delayed ACK, 40 ms per request).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(2048)
        sockets.append(sock)
    app = ReceiverApp(args.secret, hang, args.hang_s)
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        timeout_keep_alive=120,
        backlog=2048,
    )
    asyncio.run(uvicorn.Server(config).serve(sockets=sockets))


if __name__ == "__main__":
    main()
