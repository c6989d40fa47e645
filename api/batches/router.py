"""`/v1/batches`: create (from an uploaded JSONL file), retrieve, list and cancel batches.

Scopes: create, cancel and webhook re-send need `jobs:write`, list and retrieve `jobs:read`. A batch
(its jobs, its output files) is its creator's tenant's, made from that tenant's own file; another
tenant's batch answers `404` exactly like a missing one; an `admin` key sees every tenant's batches."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from api.batches.protocol import BatchCreate, BatchList, BatchOut, batch_out
from api.deps import BatchesDep, OpenAIDep, ReaderDep, SessionDep, SettingsDep, WriterDep
from api.openai.errors import OpenAIRoute
from api.visibility import visible_tenant
from api.webhooks.safety import check_batch_webhook
from shared.schemas import WebhookDeliveryOut

__all__ = ["router"]

router = APIRouter(prefix="/v1/batches", tags=["batches"], route_class=OpenAIRoute)

_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"description": 'OpenAI\'s `{"error": {"message", "type", "param", "code"}}`'}
    for code in (400, 404, 409, 503)
}


@router.post("", response_model=BatchOut, summary="Create a batch", responses=_ERRORS)
async def create_batch(
    body: BatchCreate,
    service: BatchesDep,
    openai: OpenAIDep,
    session: SessionDep,
    settings: SettingsDep,
    principal: WriterDep,
) -> BatchOut:
    """Validate the input file line by line and run each request as a job (at `batch_priority`).

    A file with any bad line gives a batch with status `failed` and an `errors` list naming each bad
    line (`line`, `code`, `message`, `param`); nothing of it runs. Otherwise the batch is `in_progress`
    with every request queued; `output_file_id` and `error_file_id` are set at once and can be
    downloaded while it runs."""
    await check_batch_webhook(body.webhook, settings)
    batch = await run_in_threadpool(
        lambda: service.create(
            session,
            body,
            webhooks_enabled=settings.webhook_secret is not None,
            webhook_safety=settings.webhook_safety,
            generation_model=openai.generation_model,
            tenant=principal.tenant,
        )
    )
    counts = await run_in_threadpool(service.counts, session, batch)
    session.rollback()
    return batch_out(batch, counts)


@router.get("", response_model=BatchList, summary="List batches, newest first", responses=_ERRORS)
def list_batches(
    service: BatchesDep,
    session: SessionDep,
    principal: ReaderDep,
    after: Annotated[str | None, Query(description="`last_id` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> BatchList:
    items, more = service.list(session, limit=limit, after=after, tenant=visible_tenant(principal))
    data = [batch_out(batch, counts) for batch, counts in items]
    return BatchList(
        data=data, first_id=data[0].id if data else None, last_id=data[-1].id if data else None, has_more=more
    )


@router.get("/{batch_id}", response_model=BatchOut, summary="Get a batch", responses=_ERRORS)
def get_batch(batch_id: str, service: BatchesDep, session: SessionDep, principal: ReaderDep) -> BatchOut:
    return batch_out(*service.get(session, batch_id, visible_tenant(principal)))


@router.post("/{batch_id}/cancel", response_model=BatchOut, summary="Cancel a batch", responses=_ERRORS)
def cancel_batch(batch_id: str, service: BatchesDep, session: SessionDep, principal: WriterDep) -> BatchOut:
    """Cancel a batch in progress: its queued requests are canceled (they go to the error file as
    `batch_cancelled`), running ones finish; `cancelling` until none runs, then `cancelled`."""
    return batch_out(*service.cancel(session, batch_id, visible_tenant(principal)))


@router.post(
    "/{batch_id}/webhook/resend",
    status_code=202,
    response_model=WebhookDeliveryOut,
    summary="Re-send a batch's failed webhook delivery",
    responses=_ERRORS,
)
def resend_batch_webhook(
    batch_id: str, service: BatchesDep, session: SessionDep, principal: WriterDep
) -> WebhookDeliveryOut:
    """textfleet's extension: make the failed delivery of the batch's event (`batch.completed`, ...)
    pending again, due now, under the same `webhook-id`, with a fresh retry schedule. 404: no such
    batch or delivery; 409: the delivery is not failed (still retried, or delivered)."""
    return service.resend_webhook(session, batch_id, visible_tenant(principal))
