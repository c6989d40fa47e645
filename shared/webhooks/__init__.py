"""Webhook events of jobs and batches (Standard Webhooks, https://www.standardwebhooks.com), as one
feature.

- `records`: the delivery rows, one per (job, event) or (batch, final status), and their reads;
- `queue`: the Redis delivery queue (due and leased sets; enqueuing, the sweeper's re-send);
- `resend`: an operator's re-send of a failed delivery;
- `policy`: allowed destinations (with `addresses`, and `settings`, the settings group of
  `TEXTFLEET_WEBHOOK_ALLOW`), the User-Agent, the retry schedule (read with `shared.backoff`);
- `tenant_secrets`: a tenant's own signing secret.

Used by the API (to show delivery state, to re-send), by `shared.lifecycle` (to record `completed`
in the transaction that ends a job), by the worker's claim (`started`) and by the sweeper. The HTTP
side, the delivery loop a webhook worker runs, lives in `workers.webhooks`.

Life of a delivery: one row per (job, event), created `pending` with `next_attempt_at = now` in the
transaction that changes the job's state, made due in Redis (`queue.enqueue_deliveries`) after that
transaction commits. Each attempt updates the row; a 2xx ends it `delivered`, a refused destination
or the end of `webhook_max_age_s` ends it `failed`. The row is the truth: after a Redis loss the due
set is rebuilt from the pending rows, and the sweeper re-sends a pending delivery that is overdue only
when it is in neither Redis set (`queue.resend_lost`): its enqueue was lost.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.webhooks.policy import (
        BACKOFF_JITTER,
        BACKOFF_SCHEDULE_S,
        USER_AGENT,
        UnsafeWebhookURLError,
        check_url_scheme,
        is_public_address,
        vet_destination,
    )
    from shared.webhooks.queue import enqueue_deliveries, resend_lost
    from shared.webhooks.records import (
        BATCH_EVENT_TYPES,
        DEFAULT_EVENTS,
        EVENT_TYPES,
        WEBHOOK_EVENTS,
        WebhookSubject,
        deliveries_for,
        delivery_out,
        due_deliveries,
        new_delivery_id,
        record_batch_event,
        record_event,
        subscribed_events,
    )
    from shared.webhooks.resend import reset_for_resend

#: Where each name below lives; loaded on first use (PEP 562), so that `shared.settings` can import
#: the settings group `shared.webhooks.settings` without this package pulling in the database layer
#: (which imports `shared.settings`) first.
_LAZY = {
    "BACKOFF_JITTER": "shared.webhooks.policy",
    "BACKOFF_SCHEDULE_S": "shared.webhooks.policy",
    "BATCH_EVENT_TYPES": "shared.webhooks.records",
    "DEFAULT_EVENTS": "shared.webhooks.records",
    "EVENT_TYPES": "shared.webhooks.records",
    "USER_AGENT": "shared.webhooks.policy",
    "UnsafeWebhookURLError": "shared.webhooks.policy",
    "WEBHOOK_EVENTS": "shared.webhooks.records",
    "WebhookSubject": "shared.webhooks.records",
    "check_url_scheme": "shared.webhooks.policy",
    "deliveries_for": "shared.webhooks.records",
    "delivery_out": "shared.webhooks.records",
    "due_deliveries": "shared.webhooks.records",
    "enqueue_deliveries": "shared.webhooks.queue",
    "is_public_address": "shared.webhooks.policy",
    "new_delivery_id": "shared.webhooks.records",
    "record_batch_event": "shared.webhooks.records",
    "record_event": "shared.webhooks.records",
    "resend_lost": "shared.webhooks.queue",
    "reset_for_resend": "shared.webhooks.resend",
    "vet_destination": "shared.webhooks.policy",
    "subscribed_events": "shared.webhooks.records",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BACKOFF_JITTER",
    "BACKOFF_SCHEDULE_S",
    "BATCH_EVENT_TYPES",
    "DEFAULT_EVENTS",
    "EVENT_TYPES",
    "USER_AGENT",
    "WEBHOOK_EVENTS",
    "UnsafeWebhookURLError",
    "WebhookSubject",
    "check_url_scheme",
    "deliveries_for",
    "delivery_out",
    "due_deliveries",
    "enqueue_deliveries",
    "is_public_address",
    "new_delivery_id",
    "record_batch_event",
    "record_event",
    "resend_lost",
    "reset_for_resend",
    "subscribed_events",
    "vet_destination",
]
