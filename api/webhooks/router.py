"""`POST /v1/jobs/{job_id}/webhooks/{event}/resend`: re-send a failed webhook delivery.

Scope `jobs:write`, on the caller's own jobs (an `admin` key: any tenant's job). Re-sending only makes
a delivery to the job's own URL pending again, so the job's owner may do it as well as an operator;
another tenant's job answers `404` exactly like a missing one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import CeleryDep, SessionDep, WriterDep
from api.visibility import visible_tenant
from api.webhooks import service
from shared.schemas import ErrorResponse, WebhookDeliveryOut

__all__ = ["router"]

router = APIRouter(prefix="/v1/jobs", tags=["webhooks"])

_ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorResponse} for c in (404, 409, 422, 503)}


@router.post(
    "/{job_id}/webhooks/{event}/resend",
    status_code=202,
    response_model=WebhookDeliveryOut,
    responses=_ERRORS,
    summary="Re-send a failed webhook delivery",
)
def resend_webhook(
    job_id: str, event: str, session: SessionDep, celery: CeleryDep, principal: WriterDep
) -> WebhookDeliveryOut:
    """Make the failed delivery of the job's `event` (`started` or `completed`) pending again, due now,
    under the same `webhook-id`, with a fresh retry schedule. 404: no such job or delivery; 409: the
    delivery is not failed (still retried, or delivered)."""
    return service.resend(session, celery, job_id, event, visible_tenant(principal))
