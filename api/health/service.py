"""Readiness: can this API process reach its database and Redis? (each check time-boxed)"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import Engine, text
from starlette.concurrency import run_in_threadpool

from shared.constants import READINESS_CHECK_TIMEOUT_S

__all__ = ["Readiness"]


async def _check(name: str, probe: Awaitable[Any]) -> dict[str, Any]:
    """`{}` if `probe` finished within READINESS_CHECK_TIMEOUT_S, else the problem as an error entry."""
    try:
        await asyncio.wait_for(probe, timeout=READINESS_CHECK_TIMEOUT_S)
    except Exception as exc:  # any failure means not ready; say which and why
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return {"field": name, "message": f"{name} is unreachable: {reason}", "type": "unavailable"}
    return {}


class Readiness:
    """The app's readiness checks (built once per app, held on `app.state.readiness`)."""

    def __init__(self, engine: Engine, redis: Redis) -> None:
        self._engine = engine
        self._redis = redis

    def _select_one(self) -> None:
        with self._engine.connect() as connection:
            connection.execute(text("select 1"))

    async def failures(self) -> list[dict[str, Any]]:
        """The checks that failed (database, redis), each as an error entry; empty when ready."""
        database, broker = await asyncio.gather(
            _check("database", run_in_threadpool(self._select_one)),
            _check("redis", self._redis.ping()),
        )
        return [check for check in (database, broker) if check]
