"""Queue depth: `GET /v1/queues` and `GET /v1/queues/{queue}` (what KEDA's metrics-api trigger reads).

Scopes: `GET /v1/queues` lists the fleet's workers (hostnames, side ports) besides the depths, which is
the operators' business: `admin`. `GET /v1/queues/{queue}` holds only fleet-wide counts, nothing of any
tenant's jobs: any valid key, so KEDA's trigger can use a key without `admin` (say `jobs:read` of a
tenant of its own, which owns no jobs)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import AdminDep, PrincipalDep, QueueStatsDep
from api.errors import error_response
from api.queues.protocol import QueueDepth, QueuesOut
from shared.constants import Queue
from shared.schemas import ErrorResponse

__all__ = ["router"]

router = APIRouter(prefix="/v1/queues", tags=["queues"])

_CONTRACT = """
How each number is computed, for queue `q` (one pipelined Redis round trip):

- `waiting` = `LLEN q` + `LLEN q:1` + ... + `LLEN q:9`: messages on Celery's priority lists
  (`q` holds our priority 9, `q:N` our priority 9 - N).
- `outstanding` = max(`ZCARD textfleet:outstanding:q`, `waiting`): jobs accepted and not yet
  terminal (the sorted set gains a job when it is enqueued and loses it at its terminal state).
  The `webhooks` queue has no such set: there `outstanding` = `waiting`.
- `in_flight` = `outstanding` - `waiting`: reserved by a worker, running, or delayed for a retry.

KEDA's metrics-api trigger reads `outstanding` of `GET /v1/queues/{queue}`.
"""


@router.get(
    "",
    summary="Depth and live workers of every queue",
    description=_CONTRACT + "\n`workers` lists the live workers of each queue, read from their heartbeat keys"
    " `textfleet:worker:<queue>:<hostname>` (hostname, running jobs, side port).",
    response_model=QueuesOut,
)
async def list_queues(stats: QueueStatsDep, _admin: AdminDep) -> QueuesOut:
    return QueuesOut.model_validate({"queues": await stats.depths(with_workers=True)})


@router.get(
    "/{queue}",
    summary="Depth of one queue (KEDA reads `outstanding`)",
    description=_CONTRACT,
    response_model=QueueDepth,
    responses={404: {"model": ErrorResponse, "description": "no such queue"}},
)
async def get_queue(queue: str, stats: QueueStatsDep, _principal: PrincipalDep) -> QueueDepth | JSONResponse:
    names = [q.value for q in Queue]
    if queue not in names:
        return error_response(
            404,
            "queue_not_found",
            f"no such queue; queues are: {', '.join(names)}",
            field="queue",
        )
    depths = await stats.depths()
    return QueueDepth.model_validate(depths[queue])
