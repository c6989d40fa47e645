"""Names shared by the API and the workers: tasks, queues, Celery task names, Redis keys.

Everything that crosses the process boundary by *name* lives here, so the API can send a job
to a worker without importing the worker's code. Task names and their queues are derived from the
task registry (`shared.tasks`) and re-exported here.
"""

from __future__ import annotations

from shared.tasks import TASK_QUEUES, Queue, TaskName

__all__ = [
    "CANCEL_CHANNEL",
    "CELERY_TASK_PREFIX",
    "EVENTS_CHANNEL_PREFIX",
    "OUTSTANDING_PREFIX",
    "PRIORITY_DEFAULT",
    "PRIORITY_MAX",
    "PRIORITY_MIN",
    "REDIS_KEY_PREFIX",
    "SWEEPER_LOCK",
    "TASK_QUEUES",
    "WEBHOOK_TASK",
    "WORKER_HEARTBEAT_PREFIX",
    "Queue",
    "TaskName",
    "celery_task_name",
    "job_events_channel",
    "outstanding_key",
]


#: Celery task names are `textfleet.<task>`; the message's only argument is the job id.
CELERY_TASK_PREFIX = "textfleet."

#: Every Redis key the fleet itself writes starts with this (Celery's own queue lists excepted).
REDIS_KEY_PREFIX = "textfleet:"
#: Pub/sub channel per job; a worker publishes the new status when a job becomes terminal.
EVENTS_CHANNEL_PREFIX = f"{REDIS_KEY_PREFIX}events:job:"
#: `textfleet:worker:<queue>:<hostname>` -> JSON heartbeat with a TTL, written by live workers.
WORKER_HEARTBEAT_PREFIX = f"{REDIS_KEY_PREFIX}worker:"

#: The Celery task that delivers one webhook event; its only argument is the delivery id.
WEBHOOK_TASK = f"{CELERY_TASK_PREFIX}deliver_webhook"
#: Pub/sub channel on which the API asks workers to abort running jobs (message: the job id).
CANCEL_CHANNEL = f"{REDIS_KEY_PREFIX}cancel"
#: `textfleet:outstanding:<queue>`: sorted set of the ids of jobs accepted and not yet terminal
#: (score: enqueue time). Its size is what autoscaling uses (waiting + reserved + running).
OUTSTANDING_PREFIX = f"{REDIS_KEY_PREFIX}outstanding:"
#: Redis lock held by the worker that runs the fleet-wide sweep.
SWEEPER_LOCK = f"{REDIS_KEY_PREFIX}sweeper-lock"

#: Job priority range: higher runs first.
PRIORITY_MIN = 0
PRIORITY_MAX = 9
PRIORITY_DEFAULT = 5


def celery_task_name(task: str) -> str:
    """The Celery task name that runs jobs of `task` (a `TaskName` or a registered task's name)."""
    return f"{CELERY_TASK_PREFIX}{task}"


def job_events_channel(job_id: str) -> str:
    """The Redis pub/sub channel on which a job's terminal status is announced."""
    return f"{EVENTS_CHANNEL_PREFIX}{job_id}"


def outstanding_key(queue: Queue | str) -> str:
    """The sorted set of a queue's outstanding (accepted, not yet terminal) job ids."""
    return f"{OUTSTANDING_PREFIX}{Queue(queue).value}"
