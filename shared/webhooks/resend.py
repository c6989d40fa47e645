"""Re-sending a failed webhook delivery (operators: `POST /v1/jobs/{id}/webhooks/{event}/resend`,
`POST /v1/batches/{id}/webhook/resend`, `textfleet webhooks resend`).

The delivery keeps its id (the `webhook-id` receivers deduplicate on) and its payload; it becomes
`pending` again with its attempts counted from zero, due now, and its max-age window starts at the
re-send (`resent_at`). Only a `failed` delivery can be re-sent: a pending one is still being retried,
a delivered one has arrived.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.db.batch_models import Batch
from shared.db.models import Job, WebhookDelivery, utcnow
from shared.errors import ConflictError, InvalidInputError, JobNotFoundError
from shared.schemas import WebhookDeliveryOut
from shared.webhooks.records import WEBHOOK_EVENTS, delivery_out

__all__ = ["reset_batch_for_resend", "reset_for_resend"]


def reset_for_resend(
    session: Session, job_id: str, event: str, *, tenant: str | None = None
) -> WebhookDeliveryOut:
    """Make the failed delivery of `job_id`'s `event` pending and due now, in the caller's transaction;
    the caller enqueues its id (`shared.webhooks.queue.enqueue_deliveries`) after the commit.

    Raises InvalidInputError (unknown event), JobNotFoundError (no such job, with `tenant` another
    tenant's job too, or no delivery of that event) and ConflictError (the delivery is not `failed`)."""
    if event not in WEBHOOK_EVENTS:
        raise InvalidInputError(
            f"unknown webhook event {event!r}; expected one of {', '.join(WEBHOOK_EVENTS)}", field="event"
        )
    job = session.get(Job, job_id)
    if job is None or (tenant is not None and job.tenant_id != tenant):
        raise JobNotFoundError(f"no job with id {job_id!r}")
    row = session.scalar(
        select(WebhookDelivery).where(WebhookDelivery.job_id == job_id, WebhookDelivery.event == event)
    )
    if row is None:
        raise JobNotFoundError(f"job {job_id} has no {event!r} webhook delivery")
    return _reset(session, row)


def reset_batch_for_resend(
    session: Session, batch_id: str, *, tenant: str | None = None
) -> WebhookDeliveryOut:
    """As `reset_for_resend`, for the one event of a batch (sent when it ended). Raises
    JobNotFoundError (no such batch, with `tenant` another tenant's batch too, or no delivery: it has
    no webhook or has not ended) and ConflictError (the delivery is not `failed`)."""
    batch = session.get(Batch, batch_id)
    if batch is None or (tenant is not None and batch.tenant_id != tenant):
        raise JobNotFoundError(f"no batch with id {batch_id!r}", code="batch_not_found")
    row = session.scalar(select(WebhookDelivery).where(WebhookDelivery.batch_id == batch_id))
    if row is None:
        raise JobNotFoundError(
            f"batch {batch_id} has no webhook delivery (no webhook, or it has not ended)",
            code="webhook_delivery_not_found",
        )
    return _reset(session, row)


def _reset(session: Session, row: WebhookDelivery) -> WebhookDeliveryOut:
    """A failed delivery made pending again, due now, with a fresh retry schedule and window."""
    if row.status != "failed":
        reason = "it is still being retried" if row.status == "pending" else "it was delivered"
        raise ConflictError(f"only a failed delivery can be re-sent; {row.id} is {row.status} ({reason})")
    now = utcnow()
    won = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == row.id, WebhookDelivery.status == "failed")
        .values(status="pending", attempts=0, next_attempt_at=now, resent_at=now)
        .execution_options(synchronize_session=False)
    )
    if not won.rowcount:  # type: ignore[attr-defined]
        raise ConflictError(f"{row.id} changed while it was being re-sent; try again")
    session.refresh(row)
    return delivery_out(row)
