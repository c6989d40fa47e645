"""Job events over Redis: workers (and the API, and the sweeper) announce terminal states.

A terminal state is announced on the job's pub/sub channel (the API's `?wait=` listens) and the job
leaves its queue's outstanding set (what autoscaling counts).
"""

from __future__ import annotations

import json

import redis

from shared.constants import TASK_QUEUES, TaskName, job_events_channel, outstanding_key

__all__ = ["announce_terminal", "publish_job_event"]


def publish_job_event(client: redis.Redis, job_id: str, status: str) -> None:
    """Announce that `job_id` reached `status`. Best effort: a waiter re-reads the database anyway."""
    client.publish(job_events_channel(job_id), json.dumps({"job_id": job_id, "status": status}))


def announce_terminal(client: redis.Redis, job_id: str, task: TaskName | str, status: str) -> None:
    """Drop the job from its queue's outstanding set and publish its terminal status, in one round trip."""
    with client.pipeline(transaction=False) as pipe:
        pipe.zrem(outstanding_key(TASK_QUEUES[TaskName(task)]), job_id)
        pipe.publish(job_events_channel(job_id), json.dumps({"job_id": job_id, "status": status}))
        pipe.execute()
