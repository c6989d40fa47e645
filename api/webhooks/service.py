"""Webhook operations the API offers: re-send a failed delivery."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from shared.schemas import WebhookDeliveryOut
from shared.webhooks import enqueue_deliveries
from shared.webhooks.resend import reset_for_resend

__all__ = ["resend"]


def resend(
    session: Session, celery: Any, job_id: str, event: str, tenant: str | None = None
) -> WebhookDeliveryOut:
    """Make the failed delivery of the job's `event` pending again and due now, then enqueue it. With
    `tenant`, another tenant's job is not found (nothing is changed)."""
    delivery = reset_for_resend(session, job_id, event, tenant=tenant)
    session.commit()
    enqueue_deliveries(celery, [delivery.id])  # if Redis refuses (503), the sweeper re-sends it
    return delivery
