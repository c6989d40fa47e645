"""Response models of `/v1/queues` (what KEDA's metrics-api trigger and operators read)."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["QueueDepth", "QueueDepthWithWorkers", "QueueWorker", "QueuesOut"]


class QueueWorker(BaseModel):
    """A live worker of the queue, from its heartbeat key `textfleet:worker:<queue>:<hostname>`."""

    hostname: str
    running: int = Field(description="jobs it was running at its last heartbeat")
    http_port: int | None = Field(default=None, description="its side port (/healthz, /metrics), if any")


class QueueDepth(BaseModel):
    """Depth of one queue."""

    queue: str
    waiting: int = Field(description="Σ LLEN of `<queue>`, `<queue>:1` ... `<queue>:9`")
    in_flight: int = Field(description="outstanding - waiting")
    outstanding: int = Field(description="max(ZCARD textfleet:outstanding:<queue>, waiting)")


class QueueDepthWithWorkers(QueueDepth):
    workers: list[QueueWorker] = Field(description="live workers, from their heartbeat keys")


class QueuesOut(BaseModel):
    """Every queue's depth and live workers."""

    queues: dict[str, QueueDepthWithWorkers]
