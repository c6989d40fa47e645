"""The ASGI application: `create_app()` builds one; `app` is what `uvicorn api.app:app` serves."""

from __future__ import annotations

import contextlib
import json
import resource
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import structlog
from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from redis.asyncio import BlockingConnectionPool, Redis

from api.auth.dependencies import authenticate
from api.auth.service import Authenticator
from api.batches.router import router as batches_router
from api.batches.service import BatchesService
from api.docs.router import router as docs_router
from api.errors import install_error_handlers
from api.files.router import router as files_router
from api.files.service import FilesService
from api.health.router import router as health_router
from api.health.service import Readiness
from api.jobs.intake import IntakeBatcher
from api.jobs.router import router as jobs_router
from api.jobs.service import JobService
from api.jobs.waits import JobWaiter
from api.keys.router import router as keys_router
from api.keys.service import KeysService
from api.limits import LimitsMiddleware, check_url_params
from api.metrics.middleware import MetricsMiddleware
from api.metrics.router import router as metrics_router
from api.openai.router import router as openai_router
from api.openai.service import OpenAIService
from api.openapi import install_openapi
from api.queues.router import router as queues_router
from api.queues.service import QueueStats
from api.quotas.dependencies import limit_request_rate
from api.quotas.middleware import QuotasMiddleware
from api.quotas.router import router as quotas_router
from api.quotas.service import QuotaService
from api.usage.router import router as usage_router
from api.usage.service import UsageService
from api.webhooks.router import router as webhooks_router
from shared.constants import OPEN_FILES_TARGET, REDIS_CONNECT_TIMEOUT_S
from shared.db.session import get_engine, get_sessionmaker
from shared.limits import Limits
from shared.logging import configure_logging
from shared.queueing import make_celery
from shared.quotas.admission import Quotas
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
    target = OPEN_FILES_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _start_services(app: FastAPI, settings: Settings) -> None:
    """Build the app's services, once per start, and hold them on `app.state` (where `api.deps`
    finds them). Nothing here does I/O: the waiter subscribes when the lifespan starts it."""
    state = app.state
    # Everything but long polling shares one bounded pool: past its size a request waits up to
    # api_redis_pool_timeout_s for a connection instead of opening more.
    state.redis = Redis.from_pool(
        BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=settings.api_redis_max_connections,
            timeout=settings.api_redis_pool_timeout_s,
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        )
    )
    state.sessions = get_sessionmaker(settings.database_url)
    # API keys to principals (or everyone open, when authentication is off).
    state.auth = Authenticator(settings.auth, state.sessions)
    state.keys = KeysService(state.sessions, state.auth)
    state.jobs = jobs = JobService(settings, state.celery, state.sessions)
    # Concurrent single submissions share one INSERT, commit and Redis write.
    state.intake = IntakeBatcher(lambda bodies, tenants: jobs.create(bodies, log_each=True, tenant=tenants))
    # Long polling: one subscription for the whole process, fanned out in memory.
    state.waiter = JobWaiter(settings.redis_url, jobs.read_many, max_waiters=settings.wait_max_waiters)
    # OpenAI-compatible endpoints: jobs through the same services, at interactive priority.
    state.openai = OpenAIService(settings, jobs, state.waiter)
    # Files and batches (OpenAI's Batch API): file bytes in the database or an S3-compatible store.
    state.files = FilesService(settings.files)
    state.batches = BatchesService(
        settings.files, state.files, state.celery, chunk_size=settings.bulk_chunk_size
    )
    state.queue_stats = QueueStats(state.redis)
    state.usage = UsageService(state.sessions)  # GET /v1/usage (issue 12)
    # Per-tenant limits: the request rate of every /v1 request, and GET /v1/quotas.
    state.quota_service = QuotaService(state.quotas, state.sessions)
    state.readiness = Readiness(get_engine(settings.database_url), state.redis)


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new API app for `settings` (default: the environment's). Touches no service until started."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings, process="api")
        raise_open_files_limit()
        _start_services(app, settings)
        await app.state.waiter.start()
        log.info("api.started", environment=settings.environment, version=app.version)
        if not settings.auth.auth_enabled:
            log.warning(
                "api.auth_disabled", detail="every request acts as the default tenant, with every scope"
            )
        try:
            yield
        finally:
            await app.state.waiter.stop()
            await app.state.redis.aclose()
            await app.state.quota_service.close()
            with contextlib.suppress(Exception):
                app.state.celery.close()
            log.info("api.stopped")

    app = FastAPI(
        title="textfleet",
        version=_version(),
        description="Submit NLP jobs (generate, summarize, moderate, risk, sentiment); poll their results.",
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,
        # served by api.docs.router instead, open or key-protected by TEXTFLEET_AUTH_DOCS
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.celery = make_celery(settings)
    app.state.quotas = Quotas.from_settings(settings)  # per-tenant limits (`shared.quotas`)
    install_error_handlers(app)
    for router in (health_router, metrics_router, docs_router):
        app.include_router(router)
    # Every /v1 route needs a valid key (401 before the route runs); routes check their scope. Then
    # no path or query parameter may hold a NUL (api.limits.check_url_params), then the caller's
    # tenant's request rate (429).
    for router in (
        jobs_router,
        queues_router,
        webhooks_router,
        openai_router,
        files_router,
        batches_router,
        keys_router,
        usage_router,
        quotas_router,
    ):
        app.include_router(
            router,
            dependencies=[Depends(authenticate), Depends(check_url_params), Depends(limit_request_rate)],
        )
    install_openapi(app, settings)
    app.add_middleware(LimitsMiddleware, limits=Limits.from_settings(settings))
    app.add_middleware(QuotasMiddleware, quotas=app.state.quotas)
    app.add_middleware(MetricsMiddleware)
    return app


app = create_app()
