"""Delivering webhook events at volume: a due set in Redis, one async loop per webhook worker.

- `shared.webhooks.queue`: the due and leased sets (a delivery is queued at most once; re-sent only when
  provably lost: a lease that ended on a dead worker, or Redis lost the set and it is rebuilt once);
- `engine.Deliverer`: pulls due ids, reads and claims their rows in batches, POSTs concurrently over
  pooled keep-alive connections (aiohttp; HTTP/2 over httpx for https with `webhook_http2`), writes
  outcomes in batches;
- `endpoints`: per-endpoint concurrency limits and circuit breakers;
- `http`: payload, signature (Standard Webhooks, once per attempt), destination check, the POST;
- `store`: the batched, conditional database reads and writes;
- `service.DeliveryThread`: the loop inside `textfleet worker --queues webhooks`.

Webhook workers load no model.
"""

from workers.webhooks.endpoints import Endpoint, Endpoints, origin
from workers.webhooks.engine import EARLY_TOLERANCE_S, Deliverer, lease_s
from workers.webhooks.http import Attempt, Sender, build_batch_payload, build_payload, make_signer
from workers.webhooks.service import DeliveryThread

__all__ = [
    "EARLY_TOLERANCE_S",
    "Attempt",
    "Deliverer",
    "DeliveryThread",
    "Endpoint",
    "Endpoints",
    "Sender",
    "build_batch_payload",
    "build_payload",
    "lease_s",
    "make_signer",
    "origin",
]
