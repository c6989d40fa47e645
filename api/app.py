"""The ASGI application: `create_app()` builds one; `app` is what `uvicorn api.app:app` serves."""

from __future__ import annotations

import contextlib
import json
import resource
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from redis.asyncio import BlockingConnectionPool, Redis

from api.batches.router import router as batches_router
from api.errors import install_error_handlers
from api.files.router import router as files_router
from api.openai.router import router as openai_router
from api.routes import health, jobs, metrics, queues
from api.routes import webhooks as webhook_routes
from api.services.waits import JobEvents, JobReader, read_jobs
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


class SafeJSONResponse(JSONResponse):
    """JSON that can always be written: a lone surrogate in a string (in a row stored before intake
    refused them) is written as its JSON escape (`\\udfff`), not a 500 for every page that holds it."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))
        return text.encode("utf-8", "backslashreplace")


def raise_open_files_limit() -> None:
    """Lift this process's soft limit on open files to its hard limit: every held connection (a
    `?wait` request is one) is a file descriptor, and the usual soft limit of 1024 is below what one
    API process is meant to hold."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new API app for `settings` (default: the environment's). Touches no service until started."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings, process="api")
        raise_open_files_limit()
        # Everything but long polling shares one bounded pool: past its size a request waits up to
        # api_redis_pool_timeout_s for a connection instead of opening more.
        app.state.redis = Redis.from_pool(
            BlockingConnectionPool.from_url(
                settings.redis_url,
                max_connections=settings.api_redis_max_connections,
                timeout=settings.api_redis_pool_timeout_s,
                socket_connect_timeout=2,
            )
        )
        # Long polling: one subscription for the whole process, fanned out in memory.
        app.state.job_events = JobEvents(settings.redis_url, max_waiters=settings.wait_max_waiters)
        app.state.job_reader = JobReader(partial(read_jobs, settings.database_url))
        await app.state.job_events.start()
        log.info("api.started", environment=settings.environment, version=app.version)
        try:
            yield
        finally:
            await app.state.job_events.stop()
            await app.state.redis.aclose()
            with contextlib.suppress(Exception):
                app.state.celery.close()
            log.info("api.stopped")

    app = FastAPI(
        title="textfleet",
        version=_version(),
        description="Submit NLP jobs (generate, summarize, moderate, risk, sentiment); poll their results.",
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,
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
    app.include_router(openai_router)
    app.include_router(files_router)
    app.include_router(batches_router)
    app.add_middleware(metrics.MetricsMiddleware)
    return app


app = create_app()
