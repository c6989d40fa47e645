"""Job logic of the API: create, get, list, cancel, and wait for a terminal state.

Sync functions take a SQLAlchemy `Session` (routes run them in the threadpool); `wait_for_job` is
async and awaits Redis pub/sub while its DB reads run in the threadpool.

What is stored: a job's `input` and `params` are the client's *validated* values as given
(`exclude_unset` + `exclude_none`), so defaults that depend on configuration (e.g. `max_tokens`
falling back to `settings.default_max_tokens`) are applied by the worker when it runs the job, not
frozen into the row; `JobOut.params` shows what the client asked for. `metadata` is stored unchanged.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import structlog
from redis.exceptions import RedisError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import AsyncRedis
from shared.constants import TaskName, job_events_channel
from shared.db import repository
from shared.errors import ConflictError, InvalidInputError, JobNotFoundError, QueueUnavailableError
from shared.queueing import send_job
from shared.schemas import JobCreate, JobList, JobOut, JobStatus

__all__ = [
    "cancel_job",
    "check_cursor",
    "create_job",
    "get_job",
    "list_jobs",
    "publish_status",
    "wait_for_job",
]

log = structlog.get_logger(__name__)

_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def _normalize_id(job_id: str) -> str:
    """The canonical (upper-case) form of a job id; JobNotFoundError for anything that is not a ULID."""
    canonical = job_id.upper()
    if not _ULID.match(canonical):
        raise JobNotFoundError(f"no job with id {job_id[:64]!r}")
    return canonical


def _read(session: Session, job_id: str) -> JobOut:
    """The job's current row, read fresh; the transaction is ended so no connection stays checked out."""
    session.expire_all()
    try:
        job = repository.get(session, job_id)
        if job is None:
            raise JobNotFoundError(f"no job with id {job_id!r}")
        return repository.to_out(job)
    finally:
        session.rollback()


# --- Create --------------------------------------------------------------------------------------


def create_job(session: Session, celery: Any, body: JobCreate) -> JobOut:
    """Store a validated job as `queued`, commit, then enqueue it by task name.

    If the broker refuses the message the row is deleted again and QueueUnavailableError propagates,
    so a failed submission leaves nothing behind.
    """
    task = TaskName(body.task)
    job = repository.new_job(
        task=task.value,
        input_=body.input.model_dump(mode="json", exclude_unset=True, exclude_none=True),
        params=body.params.model_dump(mode="json", exclude_unset=True, exclude_none=True),
        metadata=body.model_dump(mode="json", include={"metadata"})["metadata"],
        priority=body.priority,
    )
    repository.insert_jobs(session, [job])
    session.commit()
    try:
        send_job(celery, job.id, task, body.priority)
    except QueueUnavailableError as exc:
        log.warning("job.enqueue_failed", job_id=job.id, task=task.value, error=exc.message)
        try:
            repository.delete_job(session, job.id)
            session.commit()
        except Exception:
            session.rollback()
            log.exception("job.enqueue_cleanup_failed", job_id=job.id, task=task.value)
        raise
    log.info("job.created", job_id=job.id, task=task.value, priority=body.priority)
    return repository.to_out(job)


# --- Read ----------------------------------------------------------------------------------------


def get_job(session: Session, job_id: str) -> JobOut:
    """The job with `job_id`; JobNotFoundError if there is none (or the id is malformed)."""
    return _read(session, _normalize_id(job_id))


def check_cursor(cursor: str | None) -> str | None:
    """A list cursor is the id of the last job of the previous page."""
    if cursor is None:
        return None
    canonical = cursor.upper()
    if not _ULID.match(canonical):
        raise InvalidInputError("cursor is not a valid job id", field="cursor", code="validation_error")
    return canonical


def list_jobs(
    session: Session,
    *,
    limit: int,
    max_limit: int,
    cursor: str | None = None,
    status: JobStatus | None = None,
    task: TaskName | None = None,
) -> JobList:
    """A page of jobs, newest first, optionally filtered by status and task."""
    if limit > max_limit:
        raise InvalidInputError(f"limit must be at most {max_limit}", field="limit", code="validation_error")
    try:
        rows, next_cursor = repository.list_jobs(
            session,
            limit=limit,
            cursor=check_cursor(cursor),
            status=status,
            task=task.value if task is not None else None,
        )
        return JobList(items=[repository.to_out(row) for row in rows], next_cursor=next_cursor)
    finally:
        session.rollback()


# --- Cancel --------------------------------------------------------------------------------------


def cancel_job(session: Session, job_id: str) -> JobOut:
    """Cancel a queued job. JobNotFoundError if unknown; ConflictError if it is running or finished."""
    job_id = _normalize_id(job_id)
    if repository.cancel_queued(session, job_id):
        session.commit()
        log.info("job.canceled", job_id=job_id)
        return _read(session, job_id)
    session.rollback()
    current = _read(session, job_id)  # raises JobNotFoundError for an unknown id
    if current.status is JobStatus.RUNNING:
        raise ConflictError("job is running; running jobs cannot be canceled yet")
    if current.status is JobStatus.QUEUED:  # a worker claimed and released it in between: rare
        raise ConflictError("job changed state while canceling; try again")
    raise ConflictError(f"job is already {current.status.value}")


async def publish_status(redis: AsyncRedis, job: JobOut) -> None:
    """Announce a terminal state the API itself wrote (cancel), so `?wait=` callers return at once.

    Same message as `shared.events.publish_job_event`. Best effort: a waiter re-reads the database.
    """
    payload = json.dumps({"job_id": job.id, "status": job.status.value})
    try:
        await redis.publish(job_events_channel(job.id), payload)
    except (RedisError, OSError) as exc:
        log.warning("job.event_publish_failed", job_id=job.id, status=job.status.value, error=str(exc))


# --- Wait ----------------------------------------------------------------------------------------


async def wait_for_job(session: Session, redis: AsyncRedis, job_id: str, timeout_s: float) -> JobOut:
    """The job once it is terminal, or its current state after `timeout_s` seconds.

    Subscribes to the job's event channel *before* reading the database, so an event published
    between the read and the wait cannot be missed; then waits on pub/sub (no polling) and re-reads
    the database on each event. Redis failures raise QueueUnavailableError (503).
    """
    job_id = _normalize_id(job_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    channel = job_events_channel(job_id)
    async with redis.pubsub() as pubsub:
        try:
            await pubsub.subscribe(channel)
            # Wait for the server's confirmation: from then on every publish reaches us.
            while (remaining := deadline - loop.time()) > 0:
                message = await pubsub.get_message(timeout=remaining)
                if message is not None and message.get("type") == "subscribe":
                    break
        except (RedisError, OSError) as exc:
            log.warning("job.wait_unavailable", job_id=job_id, error=str(exc))
            raise QueueUnavailableError("job events are unavailable; retry without wait") from exc

        job = await run_in_threadpool(_read, session, job_id)
        while not job.status.is_terminal and (remaining := deadline - loop.time()) > 0:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=remaining)
            except (RedisError, OSError) as exc:
                log.warning("job.wait_interrupted", job_id=job_id, error=str(exc))
                break  # answer with the current state rather than an error mid-wait
            if message is not None:
                job = await run_in_threadpool(_read, session, job_id)
    if not job.status.is_terminal:  # timed out (or events broke): one last look, events are best effort
        job = await run_in_threadpool(_read, session, job_id)
    log.debug("job.wait_done", job_id=job_id, status=job.status.value)
    return job
