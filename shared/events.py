"""Job events over Redis pub/sub: workers announce terminal states, the API's `?wait=` listens."""

from __future__ import annotations

import json

import redis

from shared.constants import job_events_channel

__all__ = ["publish_job_event"]


def publish_job_event(client: redis.Redis, job_id: str, status: str) -> None:
    """Announce that `job_id` reached `status`. Best effort: a waiter re-reads the database anyway."""
    client.publish(job_events_channel(job_id), json.dumps({"job_id": job_id, "status": status}))
