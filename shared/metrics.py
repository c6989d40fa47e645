"""Every Prometheus metric of the fleet, defined once (prometheus-client's default registry).

Both sides import this module; each process only moves (and serves) its own: the API serves
`GET /metrics` on its port, a worker serves `/metrics` on its side port (workers.heartbeat). Nothing
heavy is imported here, so `api/` may use it.

API:
- `textfleet_jobs_submitted_total{task}`: jobs accepted (stored and enqueued), single and bulk.
- `textfleet_http_requests_total{method,route,status}` and
  `textfleet_http_request_duration_seconds{method,route}`: per route template (`/v1/jobs/{job_id}`).
- `textfleet_queue_waiting|in_flight|outstanding{queue}`: queue depth, read from Redis per scrape
  (see api.queues.service).
- `textfleet_api_waits_held` and `textfleet_api_waits_answered_at_once_total`: long polling
  (see api.jobs.waits).

Workers:
- `textfleet_jobs_finished_total{task,status}`, `textfleet_job_queue_wait_seconds{task}` (started
  minus created), `textfleet_job_run_seconds{task,status}`.
- `textfleet_prompt_tokens_total`, `textfleet_generated_tokens_total` (tokens/s: `rate()` of them).
- `textfleet_worker_in_flight_jobs`, `textfleet_engine_running_requests` (the vLLM batch),
  `textfleet_engine_batch_size` (classifier batches), `textfleet_engine_kv_cache_usage_ratio`.
- `textfleet_webhook_deliveries_total{outcome}`: delivered, retry, failed; skipped (pulled, nothing to
  do), deferred (put back: endpoint busy or breaker open). `textfleet_webhook_attempt_errors_total{kind}`,
  `textfleet_webhook_delivery_lag_seconds`, `textfleet_webhook_pending`, `textfleet_webhook_breakers_open`.

Usage per tenant (issue 12; moved by whichever process ends a job: a worker, the sweeper, the API's
cancel; once per job, after the commit of its terminal state, by `shared.usage.count_ended`):
- `textfleet_usage_jobs_total{tenant,task,status}`: jobs that reached a terminal state.
- `textfleet_usage_prompt_tokens_total{tenant,task}`, `textfleet_usage_completion_tokens_total{tenant,task}`.
- `textfleet_usage_classified_texts_total{tenant,task}`: texts classified by succeeded classifier jobs.
- `textfleet_usage_run_seconds_total{tenant,task}`: started -> finished of jobs that ran.
They add up to `GET /v1/usage` (same columns, same rule); sum them over processes
(`sum by (tenant) (...)`). Cardinality: `tenant` takes one value per tenant that ended a job in
this process (tenants are created by operators, never named by a request), `task` one of the 7
registered tasks, `status` one of 4 terminal states; a series exists only once it moved (tokens only
for generation tasks, texts only for classifier tasks): at most 7 x 4 + 3 x 2 + 4 + 7 = 45 series per
tenant per process. Thousands of tenants make that a lot of series: drop the label in the scrape
config (`labeldrop`) or aggregate in a recording rule if so.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "ENGINE_BATCH_SIZE",
    "ENGINE_KV_CACHE_USAGE",
    "ENGINE_RUNNING_REQUESTS",
    "GENERATED_TOKENS",
    "HTTP_REQUESTS",
    "HTTP_REQUEST_DURATION",
    "JOBS_FINISHED",
    "JOBS_SUBMITTED",
    "JOB_QUEUE_WAIT",
    "JOB_RUN",
    "PROMPT_TOKENS",
    "QUEUE_IN_FLIGHT",
    "QUEUE_OUTSTANDING",
    "QUEUE_WAITING",
    "USAGE_CLASSIFIED_TEXTS",
    "USAGE_COMPLETION_TOKENS",
    "USAGE_JOBS",
    "USAGE_PROMPT_TOKENS",
    "USAGE_RUN_SECONDS",
    "WAITS_ANSWERED_AT_ONCE",
    "WAITS_HELD",
    "WEBHOOK_ATTEMPT_ERRORS",
    "WEBHOOK_BREAKERS_OPEN",
    "WEBHOOK_DELIVERIES",
    "WEBHOOK_DELIVERY_LAG",
    "WEBHOOK_PENDING",
    "WORKER_IN_FLIGHT",
    "count_submitted",
]

#: Seconds: from sub-millisecond API calls to long generations.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_JOB_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

# --- API ---------------------------------------------------------------------------------------

JOBS_SUBMITTED = Counter(
    "textfleet_jobs_submitted", "Jobs accepted by the API (stored and enqueued).", ["task"]
)
HTTP_REQUESTS = Counter(
    "textfleet_http_requests", "HTTP requests answered by the API.", ["method", "route", "status"]
)
HTTP_REQUEST_DURATION = Histogram(
    "textfleet_http_request_duration_seconds",
    "Time the API took to answer a request.",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)
QUEUE_WAITING = Gauge("textfleet_queue_waiting", "Messages waiting on the queue's Redis lists.", ["queue"])
QUEUE_IN_FLIGHT = Gauge(
    "textfleet_queue_in_flight", "Outstanding jobs not waiting on the lists (reserved or running).", ["queue"]
)
QUEUE_OUTSTANDING = Gauge(
    "textfleet_queue_outstanding", "Jobs accepted and not yet terminal (what autoscaling reads).", ["queue"]
)

WAITS_HELD = Gauge(
    "textfleet_api_waits_held", "`?wait` requests this API process holds now (one subscription serves all)."
)
WAITS_ANSWERED_AT_ONCE = Counter(
    "textfleet_api_waits_answered_at_once",
    "`?wait` requests answered at once with the current state: the process held `wait_max_waiters`.",
)

# --- Workers -----------------------------------------------------------------------------------

JOBS_FINISHED = Counter(
    "textfleet_jobs_finished", "Jobs a worker brought to a terminal state.", ["task", "status"]
)
JOB_QUEUE_WAIT = Histogram(
    "textfleet_job_queue_wait_seconds",
    "From a job's creation to its start on a worker.",
    ["task"],
    buckets=_JOB_BUCKETS,
)
JOB_RUN = Histogram(
    "textfleet_job_run_seconds", "Time a job ran on a worker.", ["task", "status"], buckets=_JOB_BUCKETS
)
PROMPT_TOKENS = Counter("textfleet_prompt_tokens", "Prompt tokens of finished generation jobs.")
GENERATED_TOKENS = Counter("textfleet_generated_tokens", "Tokens generated by finished generation jobs.")
WORKER_IN_FLIGHT = Gauge("textfleet_worker_in_flight_jobs", "Jobs this worker is running now.")
ENGINE_RUNNING_REQUESTS = Gauge(
    "textfleet_engine_running_requests", "Requests inside the generation engine (its batch)."
)
ENGINE_BATCH_SIZE = Histogram(
    "textfleet_engine_batch_size", "Items per classifier batch (forward pass).", buckets=_BATCH_BUCKETS
)
ENGINE_KV_CACHE_USAGE = Gauge(
    "textfleet_engine_kv_cache_usage_ratio", "Fraction of the vLLM KV cache in use (0..1)."
)
WEBHOOK_DELIVERIES = Counter(
    "textfleet_webhook_deliveries",
    "Webhook deliveries pulled, by outcome (attempts: delivered, retry, failed).",
    ["outcome"],
)


def count_submitted(tasks: Iterable[str]) -> None:
    """Count accepted jobs by task (one call per submission, single or bulk)."""
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task] = counts.get(task, 0) + 1
    for task, n in counts.items():
        JOBS_SUBMITTED.labels(task=task).inc(n)


# --- Webhook workers (issue 17) -----------------------------------------------------------------

WEBHOOK_DELIVERY_LAG = Histogram(
    "textfleet_webhook_delivery_lag_seconds",
    "From a webhook event (its delivery row) to the 2xx of its delivery.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 7200.0),
)
WEBHOOK_PENDING = Gauge(
    "textfleet_webhook_pending", "Webhook deliveries due or in flight (the Redis due and leased sets)."
)
WEBHOOK_ATTEMPT_ERRORS = Counter(
    "textfleet_webhook_attempt_errors",
    "Failed webhook attempts by kind: timeout, connect, redirect, http_4xx, http_5xx, refused, dns, other.",
    ["kind"],
)
WEBHOOK_BREAKERS_OPEN = Gauge(
    "textfleet_webhook_breakers_open", "Webhook endpoints whose circuit breaker is open or half-open."
)


# --- Usage per tenant (issue 12; see the module docstring and shared.usage) -----------------------

USAGE_JOBS = Counter(
    "textfleet_usage_jobs", "Jobs that reached a terminal state, per tenant.", ["tenant", "task", "status"]
)
USAGE_PROMPT_TOKENS = Counter(
    "textfleet_usage_prompt_tokens", "Prompt tokens of ended generation jobs, per tenant.", ["tenant", "task"]
)
USAGE_COMPLETION_TOKENS = Counter(
    "textfleet_usage_completion_tokens",
    "Completion (generated) tokens of ended generation jobs, per tenant.",
    ["tenant", "task"],
)
USAGE_CLASSIFIED_TEXTS = Counter(
    "textfleet_usage_classified_texts",
    "Texts classified by succeeded classifier jobs, per tenant.",
    ["tenant", "task"],
)
USAGE_RUN_SECONDS = Counter(
    "textfleet_usage_run_seconds",
    "Seconds from start to terminal state of ended jobs that ran, per tenant.",
    ["tenant", "task"],
)
