"""Job events over Redis: workers (and the API, and the sweeper) announce terminal states.

A terminal state is announced on the job's pub/sub channel (the API's `?wait=` listens) and the job
leaves its queue's outstanding set (what autoscaling counts).
"""

from __future__ import annotations

import json

import redis

from shared.constants import TASK_QUEUES, TaskName, job_events_channel, outstanding_key

__all__ = ["announce_terminal", "announce_terminals"]


def announce_terminal(client: redis.Redis, job_id: str, task: TaskName | str, status: str) -> None:
    """Drop the job from its queue's outstanding set and publish its terminal status, in one round trip."""
    announce_terminals(client, [(job_id, str(task), status)])


def announce_terminals(client: redis.Redis, jobs: list[tuple[str, str, str]]) -> None:
    """`announce_terminal` for many `(job id, task, status)` at once, in one round trip."""
    with client.pipeline(transaction=False) as pipe:
        for job_id, task, status in jobs:
            pipe.zrem(outstanding_key(TASK_QUEUES[TaskName(task)]), job_id)
            pipe.publish(job_events_channel(job_id), json.dumps({"job_id": job_id, "status": status}))
        pipe.execute()
