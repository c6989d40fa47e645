"""Batch logic: create (validate, then store and enqueue every request as a job), read with live
`request_counts`, list and cancel. Reading a batch moves it on (`shared.batches.advance`, which the
sweeper also runs), so a client always sees it where its jobs are.

A batch, its jobs and its output files belong to the tenant that created it, and its input file must
be that tenant's own. With `tenant` given, reads, cancels and re-sends see only that tenant's batches;
another tenant's is "not found" with the same words as a missing one (`tenant=None`: every tenant's,
for an admin).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import redis
import structlog
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session
from ulid import ULID

from api.batches.protocol import BatchCreate, RequestCounts, window
from api.batches.validation import Request, parse_batch_file
from api.files.service import FilesService, new_file_id
from api.jobs.creation import job_row
from api.webhooks.safety import line_webhook_errors
from shared import batches
from shared.constants import DEFAULT_TENANT
from shared.db import repository
from shared.db.batch_models import Batch, BatchRequest, FileObject
from shared.db.models import utcnow
from shared.errors import ConflictError, InvalidInputError, JobNotFoundError, QueueUnavailableError
from shared.files.settings import FilesSettings
from shared.metrics import count_submitted
from shared.queueing import redis_client, send_jobs
from shared.quotas.admission import admit
from shared.schemas import WebhookDeliveryOut
from shared.webhooks import enqueue_deliveries, record_batch_event
from shared.webhooks.resend import reset_batch_for_resend
from shared.webhooks.settings import WebhookSafetySettings

__all__ = ["BatchesService"]

log = structlog.get_logger(__name__)


class BatchesService:
    """Batches of one app: its settings, file service and Celery producer."""

    def __init__(self, settings: FilesSettings, files: FilesService, celery: Any, *, chunk_size: int) -> None:
        self.settings = settings
        self.files = files
        self.celery = celery
        self.chunk_size = chunk_size

    # --- Create -----------------------------------------------------------------------------------

    def create(
        self,
        session: Session,
        body: BatchCreate,
        *,
        webhooks_enabled: bool,
        generation_model: str,
        webhook_safety: WebhookSafetySettings | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> Batch:
        """A batch of `tenant` from one of its uploaded files: `in_progress` with every request queued
        as a job, or `failed` with the errors of its bad lines (then nothing was stored but the batch)."""
        if body.webhook is not None and not webhooks_enabled:
            raise InvalidInputError(
                "webhook: webhooks are not enabled on this deployment (TEXTFLEET_WEBHOOK_SECRET is not set)",
                field="webhook",
                code="validation_error",
            )
        source = self.files.get(session, body.input_file_id, tenant)
        if source.purpose != "batch":
            raise InvalidInputError(
                f"file {source.id!r} has purpose {source.purpose!r}; a batch needs purpose 'batch'",
                field="input_file_id",
                code="invalid_input_file",
            )
        data = self.files.content(session, source)
        session.rollback()
        parsed = parse_batch_file(
            data,
            endpoint=body.endpoint,
            priority=self.settings.batch_priority,
            max_requests=self.settings.batch_max_requests,
            max_errors=self.settings.batch_max_errors,
            webhooks_enabled=webhooks_enabled,
            generation_model=generation_model,
        )
        if webhook_safety is not None and not parsed.errors:  # the lines' webhook destinations
            parsed.errors = line_webhook_errors(
                parsed.requests, webhook_safety, self.settings.batch_max_errors
            )
        now = utcnow()
        batch = Batch(
            id=f"batch_{ULID()}",
            tenant_id=tenant,
            endpoint=body.endpoint,
            input_file_id=source.id,
            completion_window=body.completion_window,
            meta=body.metadata,
            webhook=str(body.webhook) if body.webhook is not None else None,
            created_at=now,
            expires_at=now + window(body.completion_window),
            priority=self.settings.batch_priority,
            total=0,
        )
        if parsed.errors:
            batch.status, batch.errors, batch.failed_at = "failed", parsed.errors, now
            session.add(batch)
            session.flush()
            delivery = record_batch_event(session, batch.id, batch.webhook, "failed")
            session.commit()
            log.info("batch.failed_validation", batch_id=batch.id, errors=len(parsed.errors))
            if delivery is not None:
                try:
                    enqueue_deliveries(self.celery, [delivery.id])
                except QueueUnavailableError:  # the sweeper re-sends deliveries that are unqueued
                    log.warning("webhook.enqueue_failed", batch_id=batch.id)
            return batch
        return self._start(session, batch, parsed.requests, now)

    def _start(self, session: Session, batch: Batch, requests: Sequence[Request], now: datetime) -> Batch:
        batch.status, batch.in_progress_at, batch.total = "in_progress", now, len(requests)
        batch.output_file_id, batch.error_file_id = new_file_id(), new_file_id()
        jobs = [(request, item, job) for request in requests for item, job in enumerate(request.jobs)]
        rows = [job_row(job, now, batch.tenant_id) for _request, _item, job in jobs]
        reservation = admit(session, rows, batch=True)  # the tenant's day budget (429), all or nothing
        try:
            session.add(batch)
            for file_id, suffix in ((batch.output_file_id, "output"), (batch.error_file_id, "error")):
                session.add(
                    FileObject(
                        id=file_id,
                        tenant_id=batch.tenant_id,
                        purpose="batch_output",
                        filename=f"{batch.id}_{suffix}.jsonl",
                        bytes=0,
                        storage="jobs",
                        batch_id=batch.id,
                        created_at=now,
                    )
                )
            session.flush()
            repository.insert_job_rows(session, rows, chunk_size=self.chunk_size)
            links = [
                {
                    "job_id": row["id"],
                    "batch_id": batch.id,
                    "custom_id": request.custom_id,
                    "line": request.line,
                    "item": item,
                    "model": request.model,
                }
                for row, (request, item, _job) in zip(rows, jobs, strict=True)
            ]
            for start in range(0, len(links), self.chunk_size):
                session.execute(insert(BatchRequest), links[start : start + self.chunk_size])
            session.commit()
        except BaseException:
            session.rollback()
            reservation.release()
            raise
        try:
            send_jobs(
                self.celery,
                [
                    (row["id"], job.task, row["priority"])
                    for row, (_r, _i, job) in zip(rows, jobs, strict=True)
                ],
            )
        except QueueUnavailableError:
            reservation.release()
            self._undo(session, batch.id, [row["id"] for row in rows])
            raise
        count_submitted(row["task"] for row in rows)
        log.info("batch.created", batch_id=batch.id, requests=len(rows), endpoint=batch.endpoint)
        return batch

    def _undo(self, session: Session, batch_id: str, job_ids: list[str]) -> None:
        """Remove a batch whose jobs the broker refused (its messages that did arrive find no job)."""
        try:
            repository.delete_jobs(session, job_ids)
            session.execute(delete(BatchRequest).where(BatchRequest.batch_id == batch_id))
            session.execute(delete(FileObject).where(FileObject.batch_id == batch_id))
            session.execute(delete(Batch).where(Batch.id == batch_id))
            session.commit()
        except Exception:
            session.rollback()
            log.exception("batch.enqueue_cleanup_failed", batch_id=batch_id)

    # --- Read -------------------------------------------------------------------------------------

    def _row(self, session: Session, batch_id: str, tenant: str | None) -> Batch:
        batch = session.get(Batch, batch_id)
        if batch is None or (tenant is not None and batch.tenant_id != tenant):
            raise JobNotFoundError(f"no batch with id {batch_id!r}", code="batch_not_found")
        return batch

    def counts(self, session: Session, batch: Batch) -> RequestCounts:
        return RequestCounts(**batches.counts(session, batch)._asdict())

    def get(self, session: Session, batch_id: str, tenant: str | None = None) -> tuple[Batch, RequestCounts]:
        """The batch (of `tenant`, when given), moved on to where its jobs are
        (`shared.batches.advance`), with its counts."""
        batch = self._row(session, batch_id, tenant)
        current = batches.counts(session, batch)
        if batch.status in batches.ACTIVE_STATUSES:
            current = batches.advance(session, batch, self._redis(), current)
        session.commit()
        return batch, RequestCounts(**current._asdict())

    def _redis(self) -> redis.Redis:
        return redis_client(str(self.celery.conf.broker_url))

    def list(
        self, session: Session, *, limit: int, after: str | None, tenant: str | None = None
    ) -> tuple[list[tuple[Batch, RequestCounts]], bool]:
        """A page of batches (of `tenant`, when given), newest first, each advanced like `get`; and
        whether more follow."""
        query = select(Batch.id).order_by(Batch.id.desc()).limit(limit + 1)
        if tenant is not None:
            query = query.where(Batch.tenant_id == tenant)
        if after is not None:
            query = query.where(Batch.id < after)
        ids = list(session.scalars(query).all())
        return [self.get(session, batch_id, tenant) for batch_id in ids[:limit]], len(ids) > limit

    # --- Cancel and expire ------------------------------------------------------------------------

    def cancel(
        self, session: Session, batch_id: str, tenant: str | None = None
    ) -> tuple[Batch, RequestCounts]:
        """Cancel a batch (of `tenant`, when given): its queued jobs are canceled, running ones finish;
        `cancelled` once none runs."""
        batch = self._row(session, batch_id, tenant)
        if batch.status in {"cancelling", "cancelled"}:
            return self.get(session, batch_id, tenant)
        if batch.status != "in_progress" or not batches.move(
            session, batch, "in_progress", "cancelling", cancelling_at=utcnow()
        ):
            raise ConflictError(f"batch is already {batch.status}; only a batch in progress can be cancelled")
        batches.cancel_queued(session, batch, self._redis())
        return self.get(session, batch_id, tenant)

    # --- Webhook ----------------------------------------------------------------------------------

    def resend_webhook(
        self, session: Session, batch_id: str, tenant: str | None = None
    ) -> WebhookDeliveryOut:
        """Make the failed delivery of the batch's event (of `tenant`'s batch, when given) pending
        again and due now, then enqueue it."""
        delivery = reset_batch_for_resend(session, batch_id, tenant=tenant)
        session.commit()
        enqueue_deliveries(self.celery, [delivery.id])  # if Redis refuses (503), the sweeper re-sends it
        return delivery
