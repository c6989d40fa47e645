"""The ASGI application: `create_app()` builds one; `app` is what `uvicorn api.app:app` serves."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

import structlog
from fastapi import FastAPI
from redis.asyncio import Redis

from api.errors import install_error_handlers
from api.routes import health, jobs, metrics, queues
from api.routes import webhooks as webhook_routes
from shared.logging import configure_logging
from shared.queueing import make_celery
from shared.settings import Settings, get_settings

__all__ = ["app", "create_app"]

log = structlog.get_logger(__name__)


def _version() -> str:
    try:
        return version("textfleet")
    except PackageNotFoundError:
        return "0.0.0"


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new API app for `settings` (default: the environment's). Touches no service until started."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings, process="api")
        app.state.redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2)
        log.info("api.started", environment=settings.environment, version=app.version)
        try:
            yield
        finally:
            await app.state.redis.aclose()
            with contextlib.suppress(Exception):
                app.state.celery.close()
            log.info("api.stopped")

    app = FastAPI(
        title="textfleet",
        version=_version(),
        description="Submit NLP jobs (generate, summarize, moderate, risk, sentiment); poll their results.",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.celery = make_celery(settings)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(queues.router)
    app.include_router(metrics.router)
    app.include_router(webhook_routes.router)
    app.add_middleware(metrics.MetricsMiddleware)
    return app


app = create_app()
