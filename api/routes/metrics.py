"""Prometheus exposition: `GET /metrics` (the API process's own metrics plus queue depth gauges)."""

from __future__ import annotations

import time

import structlog
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import RedisDep
from api.services.queues import refresh_queue_gauges
from shared.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS

__all__ = ["MetricsMiddleware", "router"]

log = structlog.get_logger(__name__)

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="Prometheus metrics of this API process",
    description="Counters and histograms of this process (`textfleet_jobs_submitted_total`, "
    "`textfleet_http_requests_total`, `textfleet_http_request_duration_seconds`) and the queue depth "
    "gauges `textfleet_queue_waiting|in_flight|outstanding{queue}`, read from Redis at scrape time "
    "(same numbers as `GET /v1/queues`). If Redis does not answer, the gauges keep their last values.",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(redis: RedisDep) -> Response:
    try:
        await refresh_queue_gauges(redis)
    except Exception as exc:  # a scrape must still answer: stale gauges beat no metrics
        log.warning("metrics.queue_depth_failed", error=str(exc))
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


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
