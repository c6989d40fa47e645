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
    "DEFAULT_TENANT",
    "EVENTS_CHANNEL_PREFIX",
    "GROUPED_QUEUES",
    "JOB_GROUP_SIZE_CONF",
    "KEY_LAST_USED_EVERY_S",
    "MODERATION_CATEGORIES",
    "OUTSTANDING_PREFIX",
    "PRIORITY_DEFAULT",
    "PRIORITY_MAX",
    "PRIORITY_MIN",
    "REDIS_KEY_PREFIX",
    "RETENTION_LOCK",
    "RETENTION_MAX_ROUNDS",
    "RETENTION_PASS_S",
    "STREAM_CHANNEL_PREFIX",
    "SWEEPER_LOCK",
    "TASK_QUEUES",
    "TENANT_MAX_CHARS",
    "WEBHOOK_TASK",
    "WORKER_HEARTBEAT_PREFIX",
    "Queue",
    "TaskName",
    "celery_task_name",
    "job_events_channel",
    "job_stream_channel",
    "outstanding_key",
]


#: Celery task names are `textfleet.<task>`; the message's arguments are job ids (one, or a group).
CELERY_TASK_PREFIX = "textfleet."
#: Queues whose jobs travel in groups of up to `Settings.job_group_size` per message (`shared.queueing`):
#: short jobs, where a message's cost is a large part of a job's. A generation job runs for seconds and
#: travels alone, so that the fleet's workers (and KEDA's count) share generations one by one.
GROUPED_QUEUES = frozenset({Queue.CLASSIFY})
#: Celery configuration key under which `make_celery` keeps `Settings.job_group_size` for `send_jobs`.
JOB_GROUP_SIZE_CONF = "textfleet_job_group_size"

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
#: Redis key that spaces the sweeper's retention passes (`RETENTION_PASS_S`).
RETENTION_LOCK = f"{REDIS_KEY_PREFIX}retention-lock"

#: OpenAI's moderation category names, in their documented order.
MODERATION_CATEGORIES: tuple[str, ...] = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)

#: Job priority range: higher runs first.
PRIORITY_MIN = 0
PRIORITY_MAX = 9
PRIORITY_DEFAULT = 5

#: The tenant of jobs submitted while authentication is off, and of rows from before tenants existed.
DEFAULT_TENANT = "default"
#: Longest tenant name (a column's width).
TENANT_MAX_CHARS = 64
#: Seconds between two writes of an API key's `last_used_at` (per key and API process).
KEY_LAST_USED_EVERY_S = 60.0


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


# --- Tuning of the workers, the broker and the OpenAI-compatible surface -----------------------
# Named and explained here, once; the module that uses each imports it.

# used by shared/queueing.py
#: Most Redis commands one pipeline write carries; larger sends are written in several.
PIPELINE_MAX_COMMANDS = 10_000

# used by shared/db/conflicts.py
#: Tries of a batch transaction that lost a lock conflict before its error reaches the task threads.
CONFLICT_TRIES = 6

# used by workers/classifiers/features.py
#: Texts per encoder forward pass while building features.
EMBED_BATCH = 64

# used by workers/sweeper.py
#: Most jobs one sweep stage reads and ends or re-sends in one transaction (the rest wait for the next sweep).
SWEEP_BATCH = 1000
#: Seconds between two retention passes of the fleet: retention counts in days, and a pass reads the
#: finished jobs (no index on `erased_at`), so it runs far less often than the other stages.
RETENTION_PASS_S = 300
#: Most batches of `SWEEP_BATCH` jobs one retention pass erases per retention group (a backlog drains
#: over the next passes).
RETENTION_MAX_ROUNDS = 20

# used by workers/engines/vllm_start.py
#: How long stopping the engine loop (and close()'s and a timeout's abort) waits.
ENGINE_STOP_TIMEOUT_S = 30.0

# used by workers/engines/capacity.py
#: Prompt tokens assumed of a typical generation job when a worker sizes itself by its engine's KV
#: cache: a job holds about this plus `default_max_tokens` tokens of it.
GENERATE_TYPICAL_PROMPT_TOKENS = 256
#: Jobs a generation worker holds when neither a setting nor its engine says how many (an engine that
#: does not report its capacity).
GENERATE_CONCURRENCY_FALLBACK = 32

# used by workers/streaming.py
#: Least time between two updates of one generation (bounds Redis traffic; ~20 updates a second).
STREAM_INTERVAL_S = 0.05

# used by workers/broker.py
#: Longest wait between two attempts to reach a lost broker (kombu's default grows to 30 s).
RECONNECT_INTERVAL_MAX_S = 1.0

# used by workers/guardrails.py
#: Longest wait for a guardrail's verdict when the job itself sets no `timeout_s`.
GUARDRAIL_WAIT_S = 60.0

# used by workers/classifiers/ner.py
#: Tokens two neighbouring windows share (each token is decided where it has the most context).
NER_WINDOW_OVERLAP = 64

# used by api/openai/service.py
#: Time an interactive job may wait in the queue before it ends `expired` (a 503): about the
#: `openai` client's own default timeout (600 s), after which nobody is waiting for the answer.
INTERACTIVE_TTL_S = 600.0

# used by api/openai/service.py
#: Extra time the API waits past a job's queue and run deadlines for the fleet to record its end.
INTERACTIVE_GRACE_S = 60.0

# used by api/openai/streaming.py
#: Seconds between keep-alive comments while a streamed job runs (proxies drop idle connections).
STREAM_KEEPALIVE_S = 15.0

# used by api/openai/streaming.py
#: Longest wait for a text update before checking whether the jobs ended.
STREAM_POLL_S = 0.5

# used by api/batches/output.py
#: Input-file lines read per page (a request's jobs share its line, so a page never splits one).
BATCH_OUTPUT_PAGE_LINES = 2000

# used by api/usage/service.py (issue 12)
#: The period `GET /v1/usage` reports when `from` is not given: this many days before `to`.
USAGE_DEFAULT_DAYS = 30
#: The longest period one `GET /v1/usage` may ask for (a year and a day: a leap year's days all fit).
USAGE_MAX_DAYS = 366
# used by shared/limits.py (the body cap of a file upload, api/limits.py)
#: Bytes a multipart upload may carry beyond the file itself (boundaries, part headers, `purpose`).
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# used by shared/quotas/budget.py
#: `textfleet:quota:<tenant>:open` and `...:batch` (sorted sets: the tenant's unfinished jobs, counted
#: against its cap, and its batches' jobs, not counted), `...:tpm:<minute>` and `...:tpd:<day>`
#: (generation tokens reserved in that UTC minute / day), `textfleet:quota:jobs` (hash: what each
#: unfinished job reserved, until its end returns the unused part).
QUOTA_PREFIX = f"{REDIS_KEY_PREFIX}quota:"
#: `Retry-After` of a refusal for too many unfinished jobs (nothing tells when one will end).
QUOTA_QUEUE_RETRY_AFTER_S = 5
