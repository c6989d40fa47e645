"""FastAPI dependencies as `Annotated` aliases: settings, DB session, Celery app, Redis client.

Everything per-app lives on `app.state` (set by `api.app.create_app` and its lifespan), so two apps in
one process (tests) never share a client bound to another event loop or another configuration. The
dependencies that only read `app.state` are `async def`: FastAPI runs a plain `def` dependency in the
threadpool, and a thread hop per request for a dict lookup queues health probes behind real work.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.orm import Session

from shared.db.session import get_sessionmaker
from shared.settings import Settings

__all__ = ["AsyncRedis", "CeleryDep", "RedisDep", "SessionDep", "SettingsDep"]

#: The asyncio Redis client used for pub/sub and pings.
AsyncRedis = Redis


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """A session on the configured database for one request; closed (and rolled back) afterwards."""
    settings: Settings = request.app.state.settings
    session = get_sessionmaker(settings.database_url)()
    try:
        yield session
    finally:
        session.close()


async def get_celery_app(request: Request) -> Any:
    """The app's Celery instance (producer side only: it sends tasks by name)."""
    return request.app.state.celery


async def get_redis(request: Request) -> AsyncRedis:
    """The app's asyncio Redis client (one per app, created and closed by the lifespan)."""
    client: AsyncRedis = request.app.state.redis
    return client


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
#: `celery.Celery` is untyped; `Any` keeps mypy strict honest about it.
CeleryDep = Annotated[Any, Depends(get_celery_app)]
RedisDep = Annotated[AsyncRedis, Depends(get_redis)]
