"""`/v1/jobs`: submit, read (optionally waiting for completion), list and cancel jobs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import AfterValidator, BaseModel, Field, TypeAdapter
from starlette.concurrency import run_in_threadpool

from api.deps import CeleryDep, SessionDep, SettingsDep
from api.services import jobs as service
from api.services import waits
from api.services.intake import IntakeBatcher
from shared.constants import TaskName
from shared.db.session import get_sessionmaker
from shared.errors import InvalidInputError
from shared.schemas import ErrorResponse, JobCreate, JobList, JobOut, JobStatus
from shared.settings import Settings
from shared.validation import RequestModel, check_clean_str

__all__ = ["router"]

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorResponse} for code in codes}


class JobBatchCreate(RequestModel):
    """Jobs to submit together: all are stored and enqueued, or (any invalid) none is."""

    jobs: list[JobCreate] = Field(
        min_length=1,
        description="1 to `bulk_max_jobs` (default 10,000) jobs, each exactly a `POST /v1/jobs` body.",
    )


class JobBatch(BaseModel):
    """The jobs a batch created, in the order they were given."""

    object: Literal["list"] = "list"
    items: list[JobOut]


def _printable_key(key: str | None) -> str | None:
    """An Idempotency-Key is stored and compared as text: printable ASCII only (no NUL, no controls)."""
    if key is not None and not (check_clean_str(key).isascii() and key.isprintable()):
        raise ValueError("must be printable ASCII (no NUL or control characters)")
    return key


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Makes a retry safe: same key + same body within 24 h returns the original job(s).",
    ),
    AfterValidator(_printable_key),
]

_JOB_JSON = TypeAdapter(JobOut)
_BATCH_JSON = TypeAdapter(JobBatch)
_JSON = "application/json"


def _location(settings: Settings, job_id: str) -> str:
    path = f"/v1/jobs/{job_id}"
    return f"{settings.public_url.rstrip('/')}{path}" if settings.public_url else path


def _create(
    settings: Settings, celery: Any, bodies: list[JobCreate], *, log_each: bool = False
) -> list[JobOut]:
    session = get_sessionmaker(settings.database_url)()
    try:
        return service.create_jobs(
            session, celery, bodies, chunk_size=settings.bulk_chunk_size, log_each=log_each
        )
    finally:
        session.close()


def _get_one(settings: Settings, job_id: str) -> JobOut:
    session = get_sessionmaker(settings.database_url)()
    try:
        return service.get_job(session, job_id)
    finally:
        session.close()


def _intake(request: Request) -> IntakeBatcher:
    """The app's batcher of single submissions (made on first use, in the app's event loop)."""
    state = request.app.state
    batcher: IntakeBatcher | None = getattr(state, "intake", None)
    if batcher is None:
        settings: Settings = state.settings
        celery = state.celery
        batcher = state.intake = IntakeBatcher(
            lambda bodies: _create(settings, celery, bodies, log_each=True)
        )
    return batcher


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    summary="Submit a job",
    responses=_errors(400, 409, 422, 503),
)
async def create_job(
    body: JobCreate, request: Request, idempotency_key: IdempotencyKeyHeader = None
) -> Response:
    """Validate, store (status `queued`) and enqueue a job. Poll `Location` (or `GET ...?wait=`).

    With an `Idempotency-Key` header, the same key and body within 24 hours return the original job
    (`200`) instead of creating another; the same key with a different body is a `409`."""
    settings: Settings = request.app.state.settings
    service.check_webhooks([body], enabled=settings.webhook_secret is not None)
    if idempotency_key is not None:
        jobs, replayed = await run_in_threadpool(
            _create_idempotent, settings, request, [body], idempotency_key, "job"
        )
        job, status = jobs[0], 200 if replayed else 202
    else:
        # Concurrent submissions share one INSERT + commit + Redis write (see IntakeBatcher).
        job, status = await _intake(request).submit(body), 202
    return Response(
        _JOB_JSON.dump_json(job), status, headers={"Location": _location(settings, job.id)}, media_type=_JSON
    )


def _create_idempotent(
    settings: Settings, request: Request, bodies: list[JobCreate], key: str, kind: str
) -> tuple[list[JobOut], bool]:
    session = get_sessionmaker(settings.database_url)()
    try:
        return service.create_idempotent(
            session,
            request.app.state.celery,
            bodies,
            key=key,
            kind=kind,
            ttl_s=settings.idempotency_ttl_s,
            chunk_size=settings.bulk_chunk_size,
        )
    finally:
        session.close()


async def _batch_size_guard(request: Request) -> None:
    """Reject an oversized batch before any of its items is validated (a sub-dependency runs before
    the body is validated; the body is already parsed, and Starlette caches it)."""
    limit = request.app.state.settings.bulk_max_jobs
    try:
        data = await request.json()
    except Exception:  # not JSON: FastAPI reports it
        return
    jobs = data.get("jobs") if isinstance(data, dict) else None
    if isinstance(jobs, list) and len(jobs) > limit:
        raise InvalidInputError(
            f"at most {limit} jobs per request, got {len(jobs)}", field="jobs", code="validation_error"
        )


@router.post(
    "/batch",
    status_code=202,
    response_model=JobBatch,
    summary="Submit many jobs at once",
    responses=_errors(400, 409, 422, 503),
    dependencies=[Depends(_batch_size_guard)],
)
async def create_jobs(
    body: JobBatchCreate, request: Request, idempotency_key: IdempotencyKeyHeader = None
) -> Response:
    """Validate, store and enqueue 1 to `bulk_max_jobs` jobs in one request; each item is exactly a
    `POST /v1/jobs` body and each item's `priority` is honoured.

    **All or nothing.** If any item is invalid the answer is `422` and nothing is stored or enqueued;
    every error's `field` starts with the item's index, e.g. `jobs.3.input.text`, and so does the
    message. More than `bulk_max_jobs` items, or none, is a `422` on `jobs`. If the queue refuses the
    jobs the stored rows are deleted again and the answer is `503` (retry later).

    **Idempotency.** With an `Idempotency-Key` header, the same key and body within 24 hours return
    the original jobs (`200`); the same key with a different body is a `409`.

    **Response.** `202` with `{"object": "list", "items": [job, ...]}`: the created jobs (status
    `queued`), in the order given, so `items[i].id` is the id of `jobs[i]`.
    """
    settings: Settings = request.app.state.settings
    service.check_webhooks(body.jobs, enabled=settings.webhook_secret is not None, batch=True)
    status = 202
    if idempotency_key is not None:
        items, replayed = await run_in_threadpool(
            _create_idempotent, settings, request, body.jobs, idempotency_key, "batch"
        )
        status = 200 if replayed else 202
    else:
        items = await run_in_threadpool(_create, settings, request.app.state.celery, body.jobs)
    return Response(_BATCH_JSON.dump_json(JobBatch(items=items)), status, media_type=_JSON)


@router.get("", response_model=JobList, summary="List jobs, newest first", responses=_errors(422, 503))
def list_jobs(
    session: SessionDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, description="Page size (at most `list_max_limit`).")] = 20,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    task: Annotated[TaskName | None, Query(description="Only jobs of this task.")] = None,
) -> JobList:
    return service.list_jobs(
        session,
        limit=limit,
        max_limit=settings.list_max_limit,
        cursor=cursor,
        status=status,
        task=task,
    )


@router.get("/{job_id}", response_model=JobOut, summary="Get a job", responses=_errors(404, 422, 503))
async def get_job(
    job_id: str,
    request: Request,
    wait: Annotated[
        float | None,
        Query(
            gt=0,
            allow_inf_nan=False,
            description="Hold up to this many seconds for the job to finish (max `max_wait_s`). Above "
            "`wait_max_waiters` waiting requests in the API process, answers at once with the current state.",
        ),
    ] = None,
) -> JobOut | Response:
    """The job's current state; with `?wait=N`, returns as soon as it is terminal or after N seconds
    (at once, with the current state, when the API process already holds `wait_max_waiters` waits)."""
    settings: Settings = request.app.state.settings
    if wait is None:
        return await run_in_threadpool(_get_one, settings, job_id)
    # No session dependency here: a waiter must not cost a thread (opening and closing a session
    # dependency is two threadpool hops per request); its reads are coalesced by the app's JobReader.
    if wait > settings.max_wait_s:
        raise InvalidInputError(
            f"wait must be at most {settings.max_wait_s:g} seconds", field="wait", code="validation_error"
        )
    state = request.app.state
    job = await waits.wait_for_job(state.job_events, state.job_reader, service.normalize_id(job_id), wait)
    try:  # written directly: thousands of waiters released at once skip response-model re-validation
        return Response(_JOB_JSON.dump_json(job), media_type=_JSON)
    except ValueError:  # a legacy row pydantic cannot write (a lone surrogate): the escaping path
        return job


@router.post(
    "/{job_id}/cancel", response_model=JobOut, summary="Cancel a job", responses=_errors(404, 409, 503)
)
async def cancel_job(job_id: str, session: SessionDep, celery: CeleryDep) -> JobOut:
    """Cancel a queued or running job. A running generation is aborted inside the engine (its KV cache
    freed). 409 if the job already finished."""
    return await run_in_threadpool(service.cancel_job, session, celery, job_id)
