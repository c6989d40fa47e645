"""Liveness (`/healthz`) and readiness (`/readyz`) probes."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from api.deps import RedisDep, SettingsDep
from api.errors import error_response
from shared.db.session import get_engine
from shared.schemas import ErrorResponse

__all__ = ["router"]

log = structlog.get_logger(__name__)

router = APIRouter(tags=["health"])

#: Seconds each readiness check may take before it counts as failed.
CHECK_TIMEOUT_S = 3.0


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _select_one(url: str) -> None:
    with get_engine(url).connect() as connection:
        connection.execute(text("select 1"))


async def _check(name: str, probe: Any) -> dict[str, Any]:
    try:
        await asyncio.wait_for(probe, timeout=CHECK_TIMEOUT_S)
    except Exception as exc:  # any failure means not ready; say which and why
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return {"field": name, "message": f"{name} is unreachable: {reason}", "type": "unavailable"}
    return {}


@router.get(
    "/readyz",
    summary="Readiness: the database and Redis answer",
    responses={503: {"model": ErrorResponse}},
    response_model=None,
)
async def readyz(settings: SettingsDep, redis: RedisDep) -> dict[str, Any] | JSONResponse:
    database, broker = await asyncio.gather(
        _check("database", run_in_threadpool(_select_one, settings.database_url)),
        _check("redis", redis.ping()),
    )
    failed = [check for check in (database, broker) if check]
    if failed:
        names = ", ".join(check["field"] for check in failed)
        log.warning("readyz.not_ready", failed=names)
        return error_response(503, "not_ready", f"not ready: {names}", errors=failed)
    return {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}
