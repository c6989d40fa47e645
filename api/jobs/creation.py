"""Creating jobs: validated bodies become `queued` rows (one commit), then Celery messages (one
pipelined Redis write); all or nothing.

What is stored: a job's `input` and `params` are the client's *validated* values as given
(`exclude_unset` + `exclude_none`), so defaults that depend on configuration (e.g. `max_tokens`
falling back to `settings.default_max_tokens`) are applied by the worker when it runs the job, not
frozen into the row; `JobOut.params` shows what the client asked for. `metadata` is stored unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy import delete
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.orm import Session

from shared.constants import DEFAULT_TENANT, TaskName
from shared.db import repository
from shared.db.models import IdempotencyKey, utcnow
from shared.errors import InvalidInputError, QueueUnavailableError
from shared.metrics import count_submitted
from shared.queueing import send_jobs
from shared.quotas.admission import admit
from shared.schemas import JobCreate, JobOut

__all__ = ["IdempotentReplayError", "check_webhooks", "create_job", "create_jobs", "job_row"]

log = structlog.get_logger(__name__)


class IdempotentReplayError(Exception):
    """A concurrent request stored the same Idempotency-Key first: answer with its jobs."""


def job_row(body: JobCreate, created_at: Any, tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
    """The row of a validated job of `tenant`: input and params as given (unset and null fields left
    out), metadata unchanged (its values are already plain JSON: null stays null)."""
    return repository.new_job_row(
        tenant=tenant,
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


def create_jobs(
    session: Session,
    celery: Any,
    bodies: Sequence[JobCreate],
    *,
    chunk_size: int = 1000,
    log_each: bool = False,
    idempotency: tuple[str, str, float] | None = None,
    tenant: str | Sequence[str] = DEFAULT_TENANT,
) -> list[JobOut]:
    """Store validated jobs as `queued` (one multi-row INSERT per `chunk_size`), commit once, then
    enqueue them all in one pipelined Redis write. Returns them in the order given.

    All or nothing: if the broker refuses the messages, the rows are deleted again (one statement)
    and QueueUnavailableError propagates, so a failed submission leaves nothing behind.

    With `idempotency = (key, request digest, ttl_s)` the key is stored in the same transaction as the
    jobs; a concurrent request with the same key loses the insert race and raises IdempotentReplayError.

    Every job belongs to `tenant`, its creator's (or, a list: to `tenant[i]`, for the intake batcher's
    groups of several callers' jobs); an idempotency key is `tenant`'s own (it must be one name then).
    """
    created_at = utcnow()
    tenants = [tenant] * len(bodies) if isinstance(tenant, str) else list(tenant)
    rows = [job_row(body, created_at, owner) for body, owner in zip(bodies, tenants, strict=True)]
    reservation = admit(session, rows)  # the tenants' limits (429): given back below if not created
    try:
        repository.insert_job_rows(session, rows, chunk_size=chunk_size)
        if idempotency is not None:
            key, digest, _ttl = idempotency
            assert isinstance(tenant, str), "an Idempotency-Key belongs to one tenant"
            session.add(
                IdempotencyKey(
                    tenant_id=tenant, key=key, request_hash=digest, job_ids=[r["id"] for r in rows]
                )
            )
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        reservation.release()
        if idempotency is None:
            raise
        raise IdempotentReplayError(idempotency[0]) from exc
    except (StatementError, ValueError, TypeError) as exc:
        session.rollback()
        reservation.release()
        if not _refused_value(exc):
            raise
        # The database or its driver refused a value (validation should have caught it): this
        # request's fault, so a 4xx naming the rule, never the value.
        raise InvalidInputError(
            f"the database cannot store this job's content ({_error_kind(exc)})", code="unstorable_input"
        ) from exc
    except BaseException:
        session.rollback()
        reservation.release()
        raise
    try:
        send_jobs(celery, [(row["id"], TaskName(row["task"]), row["priority"]) for row in rows])
    except QueueUnavailableError as exc:
        reservation.release()
        ids = [row["id"] for row in rows]
        log.warning("job.enqueue_failed", jobs=len(ids), first_job_id=ids[0], error=exc.message)
        try:
            repository.delete_jobs(session, ids)
            if idempotency is not None:
                session.execute(
                    delete(IdempotencyKey).where(
                        IdempotencyKey.tenant_id == tenants[0], IdempotencyKey.key == idempotency[0]
                    )
                )
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


def create_job(session: Session, celery: Any, body: JobCreate, tenant: str = DEFAULT_TENANT) -> JobOut:
    """Store a validated job of `tenant` as `queued`, commit, then enqueue it by task name.

    If the broker refuses the message the row is deleted again and QueueUnavailableError propagates,
    so a failed submission leaves nothing behind.
    """
    return create_jobs(session, celery, [body], tenant=tenant)[0]


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
