"""`/v1/jobs`: submit, read (optionally waiting for completion), list and cancel jobs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from api.deps import CeleryDep, RedisDep, SessionDep, SettingsDep
from api.services import jobs as service
from shared.constants import TaskName
from shared.errors import InvalidInputError
from shared.schemas import ErrorResponse, JobCreate, JobList, JobOut, JobStatus

__all__ = ["router"]

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorResponse} for code in codes}


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    summary="Submit a job",
    responses=_errors(400, 422, 503),
)
def create_job(
    body: JobCreate,
    response: Response,
    session: SessionDep,
    celery: CeleryDep,
    settings: SettingsDep,
) -> JobOut:
    """Validate, store (status `queued`) and enqueue a job. Poll `Location` (or `GET ...?wait=`)."""
    job = service.create_job(session, celery, body)
    path = f"/v1/jobs/{job.id}"
    response.headers["Location"] = f"{settings.public_url.rstrip('/')}{path}" if settings.public_url else path
    return job


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
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    wait: Annotated[
        float | None,
        Query(gt=0, description="Hold up to this many seconds for the job to finish (max `max_wait_s`)."),
    ] = None,
) -> JobOut:
    """The job's current state; with `?wait=N`, returns as soon as it is terminal or after N seconds."""
    if wait is None:
        return await run_in_threadpool(service.get_job, session, job_id)
    if wait > settings.max_wait_s:
        raise InvalidInputError(
            f"wait must be at most {settings.max_wait_s:g} seconds", field="wait", code="validation_error"
        )
    return await service.wait_for_job(session, redis, job_id, wait)


@router.post(
    "/{job_id}/cancel", response_model=JobOut, summary="Cancel a queued job", responses=_errors(404, 409, 503)
)
async def cancel_job(job_id: str, session: SessionDep, redis: RedisDep) -> JobOut:
    """Cancel a job that has not started. 409 if it is running or already finished."""
    job = await run_in_threadpool(service.cancel_job, session, job_id)
    await service.publish_status(redis, job)
    return job
