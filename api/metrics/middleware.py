"""`MetricsMiddleware`: every HTTP request counted and timed by method and route template."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS

__all__ = ["MetricsMiddleware"]


class MetricsMiddleware:
    """Counts and times every HTTP request by method and route *template* (`/v1/jobs/{job_id}`, never
    the raw path); requests no route matched count as route `unmatched`. Pure ASGI: streaming
    responses pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = str(scope.get("method", ""))
            HTTP_REQUESTS.labels(method=method, route=template, status=str(status)).inc()
            HTTP_REQUEST_DURATION.labels(method=method, route=template).observe(time.perf_counter() - started)
