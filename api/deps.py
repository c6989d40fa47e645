"""FastAPI dependencies as `Annotated` aliases: the only way routes reach settings, sessions and services.

Everything per-app lives on `app.state`, built once by `api.app.create_app` and its lifespan, so two
apps in one process (tests) never share a client bound to another event loop or another
configuration. The dependencies that only read `app.state` are `async def`: FastAPI runs a plain
`def` dependency in the threadpool, and a thread hop per request for an attribute lookup queues
health probes behind real work. `SessionDep` is the one sync dependency: use it in plain `def` routes;
async routes call a service that opens its own session in the threadpool.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.orm import Session

from api.auth.dependencies import authenticate, require
from api.batches.service import BatchesService
from api.files.service import FilesService
from api.health.service import Readiness
from api.jobs.intake import IntakeBatcher
from api.jobs.service import JobService
from api.jobs.waits import JobWaiter
from api.keys.service import KeysService
from api.openai.service import OpenAIService
from api.queues.service import QueueStats
from api.quotas.service import QuotaService
from api.usage.service import UsageService
from shared.settings import Settings
from shared.tenancy.principal import Principal, Scope

__all__ = [
    "AdminDep",
    "AsyncRedis",
    "BatchesDep",
    "CeleryDep",
    "FilesDep",
    "IntakeDep",
    "JobsDep",
    "KeysDep",
    "OpenAIDep",
    "PrincipalDep",
    "QueueStatsDep",
    "QuotasDep",
    "ReaderDep",
    "ReadinessDep",
    "RedisDep",
    "SessionDep",
    "SettingsDep",
    "UsageDep",
    "WaiterDep",
    "WriterDep",
]

#: The asyncio Redis client used for pub/sub and pings.
AsyncRedis = Redis


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """A session on the app's database for one request; closed (and rolled back) afterwards."""
    session: Session = request.app.state.sessions()
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


async def get_jobs(request: Request) -> JobService:
    """The app's job service (create, get)."""
    service: JobService = request.app.state.jobs
    return service


async def get_intake(request: Request) -> IntakeBatcher:
    """The app's group commit of single submissions."""
    batcher: IntakeBatcher = request.app.state.intake
    return batcher


async def get_waiter(request: Request) -> JobWaiter:
    """The app's long polling (one Redis subscription, coalesced reads)."""
    waiter: JobWaiter = request.app.state.waiter
    return waiter


async def get_openai(request: Request) -> OpenAIService:
    """The app's OpenAI-compatible service (`api.openai.service`)."""
    service: OpenAIService = request.app.state.openai
    return service


async def get_files(request: Request) -> FilesService:
    """The app's file store service (`api.files.service`)."""
    service: FilesService = request.app.state.files
    return service


async def get_batches(request: Request) -> BatchesService:
    """The app's batch service (`api.batches.service`)."""
    service: BatchesService = request.app.state.batches
    return service


async def get_queue_stats(request: Request) -> QueueStats:
    """The app's queue depth reader."""
    stats: QueueStats = request.app.state.queue_stats
    return stats


async def get_quota_service(request: Request) -> QuotaService:
    """The app's per-tenant limits service (`api.quotas.service`)."""
    limiter: QuotaService = request.app.state.quota_service
    return limiter


async def get_readiness(request: Request) -> Readiness:
    """The app's readiness checks."""
    readiness: Readiness = request.app.state.readiness
    return readiness


async def get_usage(request: Request) -> UsageService:
    """The app's usage reports (`api.usage.service`)."""
    service: UsageService = request.app.state.usage
    return service


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
#: `celery.Celery` is untyped; `Any` keeps mypy strict honest about it.
CeleryDep = Annotated[Any, Depends(get_celery_app)]
RedisDep = Annotated[AsyncRedis, Depends(get_redis)]
JobsDep = Annotated[JobService, Depends(get_jobs)]
IntakeDep = Annotated[IntakeBatcher, Depends(get_intake)]
WaiterDep = Annotated[JobWaiter, Depends(get_waiter)]
QueueStatsDep = Annotated[QueueStats, Depends(get_queue_stats)]
OpenAIDep = Annotated[OpenAIService, Depends(get_openai)]
FilesDep = Annotated[FilesService, Depends(get_files)]
BatchesDep = Annotated[BatchesService, Depends(get_batches)]
ReadinessDep = Annotated[Readiness, Depends(get_readiness)]
QuotasDep = Annotated[QuotaService, Depends(get_quota_service)]

#: The caller (any valid key; the open principal when authentication is off).
PrincipalDep = Annotated[Principal, Depends(authenticate)]
#: A caller that may read its tenant's jobs, files and batches (`jobs:read`).
ReaderDep = Annotated[Principal, Depends(require(Scope.JOBS_READ))]
#: A caller that may submit and cancel (`jobs:write`).
WriterDep = Annotated[Principal, Depends(require(Scope.JOBS_WRITE))]
#: An operator (`admin`): sees every tenant.
AdminDep = Annotated[Principal, Depends(require(Scope.ADMIN))]


async def get_keys(request: Request) -> KeysService:
    """The app's key administration (`api.keys.service`)."""
    service: KeysService = request.app.state.keys
    return service


KeysDep = Annotated[KeysService, Depends(get_keys)]
UsageDep = Annotated[UsageService, Depends(get_usage)]
