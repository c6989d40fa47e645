"""Liveness (`/healthz`) and readiness (`/readyz`) probes."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ReadinessDep
from api.errors import error_response
from shared.schemas import ErrorResponse

__all__ = ["router"]

log = structlog.get_logger(__name__)

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database and Redis answer",
    responses={503: {"model": ErrorResponse}},
    response_model=None,
)
async def readyz(readiness: ReadinessDep) -> dict[str, Any] | JSONResponse:
    failed = await readiness.failures()
    if failed:
        names = ", ".join(check["field"] for check in failed)
        log.warning("readyz.not_ready", failed=names)
        return error_response(503, "not_ready", f"not ready: {names}", errors=failed)
    return {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}
