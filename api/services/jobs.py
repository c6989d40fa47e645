"""Job logic of the API: create, get, list, cancel, and wait for a terminal state.

Sync functions take a SQLAlchemy `Session` (routes run them in the threadpool); long polling
(`?wait=`) lives in `api.services.waits`.

What is stored: a job's `input` and `params` are the client's *validated* values as given
(`exclude_unset` + `exclude_none`), so defaults that depend on configuration (e.g. `max_tokens`
falling back to `settings.default_max_tokens`) are applied by the worker when it runs the job, not
frozen into the row; `JobOut.params` shows what the client asked for. `metadata` is stored unchanged.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import delete, select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.orm import Session

from shared.constants import TaskName
from shared.db import repository
from shared.db.models import IdempotencyKey, Job, utcnow
from shared.errors import ConflictError, InvalidInputError, JobNotFoundError, QueueUnavailableError
from shared.lifecycle import Completion, end_jobs
from shared.metrics import count_submitted
from shared.queueing import redis_client, send_jobs
from shared.schemas import JobCreate, JobList, JobOut, JobStatus
from shared.webhooks import deliveries_for

__all__ = [
    "cancel_job",
    "check_cursor",
    "create_idempotent",
    "create_job",
    "create_jobs",
    "get_job",
    "list_jobs",
    "normalize_id",
    "with_deliveries",
]

log = structlog.get_logger(__name__)

_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def normalize_id(job_id: str) -> str:
    """The canonical (upper-case) form of a job id; JobNotFoundError for anything that is not a ULID."""
    canonical = job_id.upper()
    if not _ULID.match(canonical):
        raise JobNotFoundError("no job with this id (a job id is a 26-character ULID)")
    return canonical


def _read(session: Session, job_id: str) -> JobOut:
    """The job's current row, read fresh; the transaction is ended so no connection stays checked out."""
    session.expire_all()
    try:
        job = repository.get(session, job_id)
        if job is None:
            raise JobNotFoundError("no job with this id")
        return with_deliveries(session, [job])[0]
    finally:
        session.rollback()


def with_deliveries(session: Session, jobs: Sequence[Job]) -> list[JobOut]:
    """Jobs as clients see them, with the delivery state of their webhook events (one query)."""
    out = [repository.to_out(job) for job in jobs]
    hooked = [job.id for job in jobs if job.webhook]
    if hooked:
        deliveries = deliveries_for(session, hooked)
        for item in out:
            item.webhook_deliveries = deliveries.get(item.id, [])
    return out


# --- Create --------------------------------------------------------------------------------------


def _row(body: JobCreate, created_at: Any) -> dict[str, Any]:
    """The row of a validated job: input and params as given (unset and null fields left out),
    metadata unchanged (its values are already plain JSON: null stays null)."""
    return repository.new_job_row(
        task=body.task.value,
        input_=body.input.model_dump(mode="json", exclude_unset=True, exclude_none=True),
        params=body.params.model_dump(mode="json", exclude_unset=True, exclude_none=True),
        metadata=dict(body.metadata),
        priority=body.priority,
        created_at=created_at,
        webhook=str(body.webhook) if body.webhook is not None else None,
        webhook_events=body.events or None,
    )


def check_webhooks(bodies: Sequence[JobCreate], *, enabled: bool, batch: bool = False) -> None:
    """Webhooks need the deployment's signing secret; say which job asked for one without it."""
    if enabled:
        return
    for index, body in enumerate(bodies):
        if body.webhook is not None:
            field = f"jobs.{index}.webhook" if batch else "webhook"
            raise InvalidInputError(
                f"{field}: webhooks are not enabled on this deployment (TEXTFLEET_WEBHOOK_SECRET is not set)",
                field=field,
                code="validation_error",
            )


def request_hash(bodies: Sequence[JobCreate], kind: str) -> str:
    """A digest of what was submitted (validated content), for Idempotency-Key comparison."""
    canonical = json.dumps(
        [kind, [b.model_dump(mode="json") for b in bodies]], sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def replay(session: Session, key: str, digest: str, ttl_s: float) -> list[JobOut] | None:
    """The jobs an Idempotency-Key already created, if it was used within `ttl_s` with the same request;
    ConflictError if it was used with a different one; None if it is unused (or expired, then freed)."""
    seen = session.get(IdempotencyKey, key)
    if seen is None:
        return None
    if seen.created_at < utcnow() - timedelta(seconds=ttl_s):
        session.delete(seen)
        session.flush()
        return None
    if seen.request_hash != digest:
        raise ConflictError("this Idempotency-Key was already used with a different request body")
    rows = {job.id: job for job in session.scalars(select(Job).where(Job.id.in_(seen.job_ids)))}
    return with_deliveries(session, [rows[job_id] for job_id in seen.job_ids if job_id in rows])


def create_jobs(
    session: Session,
    celery: Any,
    bodies: Sequence[JobCreate],
    *,
    chunk_size: int = 1000,
    log_each: bool = False,
    idempotency: tuple[str, str, float] | None = None,
) -> list[JobOut]:
    """Store validated jobs as `queued` (one multi-row INSERT per `chunk_size`), commit once, then
    enqueue them all in one pipelined Redis write. Returns them in the order given.

    All or nothing: if the broker refuses the messages, the rows are deleted again (one statement)
    and QueueUnavailableError propagates, so a failed submission leaves nothing behind.

    With `idempotency = (key, request digest, ttl_s)` the key is stored in the same transaction as the
    jobs; a concurrent request with the same key loses the insert race and raises IdempotentReplay.
    """
    created_at = utcnow()
    rows = [_row(body, created_at) for body in bodies]
    try:
        repository.insert_job_rows(session, rows, chunk_size=chunk_size)
        if idempotency is not None:
            key, digest, _ttl = idempotency
            session.add(IdempotencyKey(key=key, request_hash=digest, job_ids=[r["id"] for r in rows]))
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        if idempotency is None:
            raise
        raise IdempotentReplayError(idempotency[0]) from exc
    except (StatementError, ValueError, TypeError) as exc:
        session.rollback()
        if not _refused_value(exc):
            raise
        # The database or its driver refused a value (validation should have caught it): this
        # request's fault, so a 4xx naming the rule, never the value.
        raise InvalidInputError(
            f"the database cannot store this job's content ({_error_kind(exc)})", code="unstorable_input"
        ) from exc
    except BaseException:
        session.rollback()
        raise
    try:
        send_jobs(celery, [(row["id"], TaskName(row["task"]), row["priority"]) for row in rows])
    except QueueUnavailableError as exc:
        ids = [row["id"] for row in rows]
        log.warning("job.enqueue_failed", jobs=len(ids), first_job_id=ids[0], error=exc.message)
        try:
            repository.delete_jobs(session, ids)
            if idempotency is not None:
                session.execute(delete(IdempotencyKey).where(IdempotencyKey.key == idempotency[0]))
            session.commit()
        except Exception:
            session.rollback()
            log.exception("job.enqueue_cleanup_failed", jobs=len(ids), first_job_id=ids[0])
        raise
    count_submitted(row["task"] for row in rows)
    if log_each or len(rows) == 1:
        for row in rows:
            log.info("job.created", job_id=row["id"], task=row["task"], priority=row["priority"])
    else:
        log.info("jobs.created", jobs=len(rows), first_job_id=rows[0]["id"], last_job_id=rows[-1]["id"])
    return [repository.row_to_out(row) for row in rows]


def _refused_value(exc: BaseException) -> bool:
    """Whether a failed INSERT was refused for a value it held (DataError, an encoding error in the
    driver), not for the database being unreachable or a bug in the statement."""
    if isinstance(exc, DataError):
        return True
    if isinstance(exc, DBAPIError):  # OperationalError, ProgrammingError, ...: not the input's fault
        return False
    cause = exc.orig if isinstance(exc, StatementError) else exc
    return isinstance(cause, ValueError | TypeError)


def _error_kind(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    return type(cause).__name__


class IdempotentReplayError(Exception):
    """A concurrent request stored the same Idempotency-Key first: answer with its jobs."""


def create_idempotent(
    session: Session,
    celery: Any,
    bodies: Sequence[JobCreate],
    *,
    key: str,
    kind: str,
    ttl_s: float,
    chunk_size: int = 1000,
) -> tuple[list[JobOut], bool]:
    """Create jobs under an Idempotency-Key: (jobs, replayed). The same key with the same request within
    `ttl_s` returns the original jobs (replayed=True); with a different request, ConflictError."""
    digest = request_hash(bodies, kind)
    try:
        earlier = replay(session, key, digest, ttl_s)
        if earlier is not None:
            return earlier, True
        session.commit()  # an expired key was freed
    finally:
        session.rollback()
    try:
        return create_jobs(
            session, celery, bodies, chunk_size=chunk_size, idempotency=(key, digest, ttl_s)
        ), False
    except IdempotentReplayError:
        try:
            earlier = replay(session, key, digest, ttl_s)
        finally:
            session.rollback()
        if earlier is None:  # freed again in between: vanishingly rare
            raise ConflictError("this Idempotency-Key is being used concurrently; retry") from None
        return earlier, True


def create_job(session: Session, celery: Any, body: JobCreate) -> JobOut:
    """Store a validated job as `queued`, commit, then enqueue it by task name.

    If the broker refuses the message the row is deleted again and QueueUnavailableError propagates,
    so a failed submission leaves nothing behind.
    """
    return create_jobs(session, celery, [body])[0]


# --- Read ----------------------------------------------------------------------------------------


def get_job(session: Session, job_id: str) -> JobOut:
    """The job with `job_id`; JobNotFoundError if there is none (or the id is malformed)."""
    return _read(session, normalize_id(job_id))


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
        return JobList(items=with_deliveries(session, rows), next_cursor=next_cursor)
    finally:
        session.rollback()


# --- Cancel --------------------------------------------------------------------------------------


def cancel_job(session: Session, celery: Any, job_id: str) -> JobOut:
    """Cancel a queued or running job. A running one is also aborted inside its worker's engine (the
    workers listen on CANCEL_CHANNEL), freeing its KV cache. JobNotFoundError if unknown;
    ConflictError if it already finished."""
    job_id = normalize_id(job_id)
    client = redis_client(str(celery.conf.broker_url))
    ended = end_jobs(session, client, [Completion.canceled(job_id)])[0]  # written, then announced
    if ended is not None:
        log.info("job.canceled", job_id=job_id, was=ended.previous.value)
        return _read(session, job_id)
    current = _read(session, job_id)  # raises JobNotFoundError for an unknown id
    if not current.status.is_terminal:  # a worker moved it in between: rare
        raise ConflictError("job changed state while canceling; try again")
    raise ConflictError(f"job is already {current.status.value}")
