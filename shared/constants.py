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
    "STREAM_CHANNEL_PREFIX",
    "SWEEPER_LOCK",
    "TASK_QUEUES",
    "WEBHOOK_TASK",
    "WORKER_HEARTBEAT_PREFIX",
    "Queue",
    "TaskName",
    "celery_task_name",
    "job_events_channel",
    "job_stream_channel",
    "outstanding_key",
]


#: Celery task names are `textfleet.<task>`; the message's only argument is the job id.
CELERY_TASK_PREFIX = "textfleet."

#: Every Redis key the fleet itself writes starts with this (Celery's own queue lists excepted).
REDIS_KEY_PREFIX = "textfleet:"
#: Pub/sub channel per job; a worker publishes the new status when a job becomes terminal.
EVENTS_CHANNEL_PREFIX = f"{REDIS_KEY_PREFIX}events:job:"
#: Pub/sub channel per streamed generation; its worker publishes the whole text so far as it grows.
STREAM_CHANNEL_PREFIX = f"{REDIS_KEY_PREFIX}stream:job:"
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


def job_stream_channel(job_id: str) -> str:
    """The Redis pub/sub channel on which a streamed generation's text so far is published."""
    return f"{STREAM_CHANNEL_PREFIX}{job_id}"


def outstanding_key(queue: Queue | str) -> str:
    """The sorted set of a queue's outstanding (accepted, not yet terminal) job ids."""
    return f"{OUTSTANDING_PREFIX}{Queue(queue).value}"


# =================================================================================================
# Tuning constants of the API process (helper r4). Values an operator has no reason to change: each
# is a trade-off fixed here, named and explained once. What an operator tunes is a Setting.
# =================================================================================================

#: Most single submissions (`POST /v1/jobs`) one group commit of the intake batcher takes: one
#: multi-row INSERT, one commit and one pipelined Redis write for all of them.
INTAKE_MAX_BATCH = 256
#: Group commits of the intake batcher in flight at once: two overlap one's database round trip with
#: the other's work; more only contend for the same rows and connections.
INTAKE_MAX_FLUSHES = 2
#: Most jobs one coalesced read of the long-poll reader fetches (one `SELECT ... WHERE id IN (...)`).
READER_MAX_BATCH = 500
#: Coalesced reads of the long-poll reader in flight at once (as INTAKE_MAX_FLUSHES).
READER_MAX_FLUSHES = 2
#: Seconds between attempts to renew a lost job-events subscription: from the first, doubling up to
#: the second (a Redis restart is noticed within a fraction of a second, an outage costs little).
EVENTS_RETRY_S: tuple[float, float] = (0.2, 5.0)
#: Seconds the API's startup waits for its job-events subscription before it serves anyway (waits
#: then answer at once until the subscription is up).
EVENTS_READY_WITHIN_S = 2.0
#: Seconds one read of the job-events subscription blocks before it looks again (bounds how long a
#: dead connection goes unnoticed between health checks).
EVENTS_POLL_S = 5.0
#: Seconds between redis-py's health checks (PING) of the long-lived job-events connection.
EVENTS_HEALTH_CHECK_S = 15
#: Seconds the API waits to connect to Redis before the request (or readiness check) fails.
REDIS_CONNECT_TIMEOUT_S = 2.0
#: Seconds each readiness check (`/readyz`: database, Redis) may take before it counts as failed;
#: below Kubernetes' default probe timeout plus period, so a hung store fails the probe, not the pod.
READINESS_CHECK_TIMEOUT_S = 3.0
#: `Retry-After` (seconds) of every 503: the client retries soon, the outage is usually brief.
RETRY_AFTER_S = 1
#: Most worker heartbeat keys `GET /v1/queues` reads per queue (one SCAN page is plenty for a fleet),
#: and the SCAN page size used to find them.
HEARTBEAT_SCAN_MAX = 1000
HEARTBEAT_SCAN_PAGE = 500
#: Open files an API process lifts its soft limit to when the hard limit is unlimited: every held
#: connection (a `?wait` request is one) is a file descriptor, and 1024 is far too few.
OPEN_FILES_TARGET = 65536
