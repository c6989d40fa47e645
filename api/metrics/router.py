"""Prometheus exposition: `GET /metrics` (the API process's own metrics plus queue depth gauges)."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.auth.guards import metrics_access
from api.deps import QueueStatsDep

__all__ = ["router"]

log = structlog.get_logger(__name__)

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="Prometheus metrics of this API process",
    description="Counters and histograms of this process (`textfleet_jobs_submitted_total`, "
    "`textfleet_http_requests_total`, `textfleet_http_request_duration_seconds`) and the queue depth "
    "gauges `textfleet_queue_waiting|in_flight|outstanding{queue}`, read from Redis at scrape time "
    "(same numbers as `GET /v1/queues`). If Redis does not answer, the gauges keep their last values. "
    "Protected by `TEXTFLEET_AUTH_METRICS` (default: an admin key or `TEXTFLEET_AUTH_METRICS_TOKEN`).",
    dependencies=[Depends(metrics_access)],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(stats: QueueStatsDep) -> Response:
    try:
        await stats.refresh_gauges()
    except Exception as exc:  # a scrape must still answer: stale gauges beat no metrics
        log.warning("metrics.queue_depth_failed", error=str(exc))
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
