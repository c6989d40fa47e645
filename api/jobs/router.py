"""`/v1/jobs`: submit, read (optionally waiting for completion), list, cancel and erase jobs.

Thin routes: validation is the models' (`shared.schemas`, `api.jobs.protocol`), the work is the
services' (`api.deps`: the job service, the intake batcher, the waiter), errors are mapped to HTTP
by `api.errors`. Async routes hold no session and no thread while they wait.

Scopes: submitting and cancelling need `jobs:write`, reading, listing and waiting `jobs:read`. A job
belongs to the tenant of the key that submitted it; a caller sees only its own tenant's jobs (an
`admin` key sees every tenant's), and another tenant's job answers exactly like a missing one
(`api.visibility`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool

from api.deps import (
    CeleryDep,
    IntakeDep,
    JobsDep,
    ReaderDep,
    SessionDep,
    SettingsDep,
    WaiterDep,
    WriterDep,
)
from api.jobs import reads
from api.jobs.creation import check_webhooks
from api.jobs.erasure import erase_job
from api.jobs.protocol import IdempotencyKeyHeader, JobBatch, JobBatchCreate
from api.jobs.service import cancel_job as cancel
from api.visibility import visible_tenant
from api.webhooks.safety import check_job_webhooks
from shared.constants import TaskName
from shared.errors import InvalidInputError
from shared.schemas import ErrorResponse, JobCreate, JobList, JobOut, JobStatus

__all__ = ["router"]

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorResponse} for code in codes}


_JOB_JSON = TypeAdapter(JobOut)
_BATCH_JSON = TypeAdapter(JobBatch)
_JSON = "application/json"


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    summary="Submit a job",
    responses=_errors(400, 409, 422, 503),
)
async def create_job(
    body: JobCreate,
    jobs: JobsDep,
    intake: IntakeDep,
    principal: WriterDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Validate, store (status `queued`) and enqueue a job. Poll `Location` (or `GET ...?wait=`).

    With an `Idempotency-Key` header, the same key and body within 24 hours return the original job
    (`200`) instead of creating another; the same key with a different body is a `409`."""
    check_webhooks([body], enabled=jobs.settings.webhook_secret is not None)
    await check_job_webhooks([body], jobs.settings)
    if idempotency_key is not None:
        created, replayed = await run_in_threadpool(
            lambda: jobs.create_idempotent([body], key=idempotency_key, kind="job", tenant=principal.tenant)
        )
        job, status = created[0], 200 if replayed else 202
    else:
        # Concurrent submissions share one INSERT + commit + Redis write (see IntakeBatcher).
        job, status = await intake.submit(body, principal.tenant), 202
    location = {"Location": jobs.location(job.id)}
    return Response(_JOB_JSON.dump_json(job), status, headers=location, media_type=_JSON)


async def _batch_size_guard(request: Request, settings: SettingsDep) -> None:
    """Reject an oversized batch before any of its items is validated (a sub-dependency runs before
    the body is validated; the body is already parsed, and Starlette caches it)."""
    limit = settings.bulk_max_jobs
    try:
        data = await request.json()
    except Exception:  # not JSON: FastAPI reports it
        return
    items = data.get("jobs") if isinstance(data, dict) else None
    if isinstance(items, list) and len(items) > limit:
        raise InvalidInputError(
            f"at most {limit} jobs per request, got {len(items)}", field="jobs", code="validation_error"
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
    body: JobBatchCreate, jobs: JobsDep, principal: WriterDep, idempotency_key: IdempotencyKeyHeader = None
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
    check_webhooks(body.jobs, enabled=jobs.settings.webhook_secret is not None, batch=True)
    await check_job_webhooks(body.jobs, jobs.settings, batch=True)
    status = 202
    if idempotency_key is not None:
        items, replayed = await run_in_threadpool(
            lambda: jobs.create_idempotent(
                body.jobs, key=idempotency_key, kind="batch", tenant=principal.tenant
            )
        )
        status = 200 if replayed else 202
    else:
        items = await run_in_threadpool(lambda: jobs.create(body.jobs, tenant=principal.tenant))
    return Response(_BATCH_JSON.dump_json(JobBatch(items=items)), status, media_type=_JSON)


@router.get("", response_model=JobList, summary="List jobs, newest first", responses=_errors(422, 503))
def list_jobs(
    session: SessionDep,
    settings: SettingsDep,
    principal: ReaderDep,
    limit: Annotated[int, Query(ge=1, description="Page size (at most `list_max_limit`).")] = 20,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    task: Annotated[TaskName | None, Query(description="Only jobs of this task.")] = None,
) -> JobList:
    return reads.list_jobs(
        session,
        limit=limit,
        max_limit=settings.list_max_limit,
        cursor=cursor,
        status=status,
        task=task,
        tenant=visible_tenant(principal),
    )


@router.get("/{job_id}", response_model=JobOut, summary="Get a job", responses=_errors(404, 422, 503))
async def get_job(
    job_id: str,
    jobs: JobsDep,
    waiter: WaiterDep,
    principal: ReaderDep,
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
    (at once, with the current state, when the API process already holds `wait_max_waiters` waits).
    Another tenant's job is a `404` at once, like an id that does not exist."""
    tenant = visible_tenant(principal)
    if wait is None:
        return await run_in_threadpool(jobs.get, job_id, tenant)
    # No session dependency here: a waiter must not cost a thread (opening and closing a session
    # dependency is two threadpool hops per request); its reads are coalesced by the app's JobReader.
    max_wait_s = jobs.settings.max_wait_s
    if wait > max_wait_s:
        raise InvalidInputError(
            f"wait must be at most {max_wait_s:g} seconds", field="wait", code="validation_error"
        )
    job = await waiter.wait(reads.normalize_id(job_id), wait, tenant)
    try:  # written directly: thousands of waiters released at once skip response-model re-validation
        return Response(_JOB_JSON.dump_json(job), media_type=_JSON)
    except ValueError:  # a legacy row pydantic cannot write (a lone surrogate): the escaping path
        return job


@router.post(
    "/{job_id}/cancel", response_model=JobOut, summary="Cancel a job", responses=_errors(404, 409, 503)
)
def cancel_job(job_id: str, session: SessionDep, celery: CeleryDep, principal: WriterDep) -> JobOut:
    """Cancel a queued or running job. A running generation is aborted inside the engine (its KV cache
    freed). 409 if the job already finished."""
    return cancel(session, celery, job_id, visible_tenant(principal))


@router.delete(
    "/{job_id}", response_model=JobOut, summary="Erase a job's data", responses=_errors(404, 409, 503)
)
def delete_job(job_id: str, session: SessionDep, celery: CeleryDep, principal: WriterDep) -> JobOut:
    """Erase the job's input, params, metadata, result and error text now (what retention does after
    `retention_days`); the job stays listed with its task, status, tokens and timings, and `erased_at`.
    A job not yet finished is canceled first. Erasing again answers the same."""
    return erase_job(session, celery, job_id, principal)
