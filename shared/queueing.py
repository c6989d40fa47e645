"""The Celery application both sides share, and how the API enqueues a job by task name.

The API uses `send_job` only; workers import the same app and register the tasks on it. Celery has
no result backend here: the database is the source of truth.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

import redis
from celery import Celery
from kombu.entity import Queue as KombuQueue

from shared.constants import (
    GROUPED_QUEUES,
    JOB_GROUP_SIZE_CONF,
    PIPELINE_MAX_COMMANDS,
    PRIORITY_DEFAULT,
    PRIORITY_MAX,
    TASK_QUEUES,
    WEBHOOK_TASK,
    Queue,
    TaskName,
    celery_task_name,
    outstanding_key,
)
from shared.errors import QueueUnavailableError
from shared.settings import Settings, get_settings

__all__ = [
    "celery_priority",
    "get_celery",
    "job_groups",
    "job_priority",
    "make_celery",
    "publish",
    "redis_client",
    "send_job",
    "send_jobs",
]


def celery_priority(priority: int) -> int:
    """Celery's Redis transport runs priority 0 first; ours runs 9 first."""
    return PRIORITY_MAX - priority


def job_priority(delivery_info: Mapping[str, Any] | None) -> int:
    """The job priority a delivered message was sent at (`celery_priority` the other way round)."""
    sent = (delivery_info or {}).get("priority")
    return PRIORITY_DEFAULT if sent is None else PRIORITY_MAX - int(sent)


def make_celery(settings: Settings) -> Celery:
    """A Celery app configured for textfleet's broker and queues."""
    app = Celery("textfleet", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_default_queue=Queue.GENERATE.value,
        task_queues=[KombuQueue(q.value, routing_key=q.value) for q in Queue],  # type: ignore[no-untyped-call]
        task_routes={
            **{celery_task_name(t): {"queue": q.value} for t, q in TASK_QUEUES.items()},
            WEBHOOK_TASK: {"queue": Queue.WEBHOOKS.value},
        },
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": settings.broker_visibility_timeout_s,
            "priority_steps": list(range(PRIORITY_MAX + 1)),
            "sep": ":",
            "queue_order_strategy": "priority",
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    app.conf[JOB_GROUP_SIZE_CONF] = settings.job_group_size
    return app


@lru_cache(maxsize=1)
def get_celery() -> Celery:
    """The process-wide Celery app for the current settings."""
    return make_celery(get_settings())


def send_job(
    app: Celery, job_id: str, task: TaskName | str, priority: int, *, countdown: float | None = None
) -> None:
    """Enqueue one job by task name; with `countdown` (seconds), a worker runs it no earlier than that
    (Celery's `eta`). Raises QueueUnavailableError if the broker refuses it."""
    send_jobs(app, [(job_id, TaskName(task), priority)], countdown=countdown)


def send_jobs(
    app: Celery, jobs: Sequence[tuple[str, TaskName, int]], *, countdown: float | None = None
) -> None:
    """Enqueue jobs `(job_id, task, priority)` over one broker connection, in one pipelined write.

    Each message is an ordinary Celery task message (protocol 2, built by `app.amqp`, published by a
    kombu `Producer`), exactly what `app.send_task(celery_task_name(task), args=job_ids,
    queue=..., priority=celery_priority(priority))` sends: its arguments are the ids of the jobs it
    carries, one, or on a grouped queue up to `Settings.job_group_size` of one task and priority
    (`job_groups`). The messages are buffered in the producer's publish batch (a Redis pipeline) and
    written together, and each queue is declared once per call instead of once per message.

    A failed write is tried once more on a fresh connection (a pooled one may have been dropped by
    Redis). Raises QueueUnavailableError if the broker still refuses them. Delivery of a failed call
    is uncertain (a batch may have been partly written): callers delete the jobs' rows, which turns
    any message that did arrive into a no-op for the worker (it finds no `queued` job to claim).
    """
    if not jobs:
        return

    def write() -> None:
        track_outstanding(app, jobs)  # ZADD NX: a second try changes nothing already there
        _publish(app, jobs, countdown)  # a message that did go out twice is claimed once: harmless

    publish(write, "job")


def publish(write: Callable[[], None], what: str) -> None:
    """Run a write to the broker's Redis (job messages, webhook deliveries), once more if it fails: a
    pooled connection Redis dropped is replaced on the next use (redis-py and kombu reconnect).
    QueueUnavailableError (naming `what`) if the second try fails too. Every write given here must be
    safe to repeat."""
    try:
        write()
    except Exception:
        try:
            write()
        except Exception as exc:  # kombu and redis-py raise many kinds on a broken connection
            raise QueueUnavailableError(f"could not enqueue {what}: {exc}") from exc


@lru_cache(maxsize=8)
def redis_client(url: str) -> redis.Redis:
    """A pooled synchronous Redis client for `url` (one per URL per process)."""
    return redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)


def track_outstanding(app: Celery, jobs: Sequence[tuple[str, TaskName, int]]) -> None:
    """Add jobs to their queue's outstanding set (`ZADD NX`, score = now) before they are sent, so a
    job is counted from the moment it can be claimed until a terminal state removes it."""
    now = time.time()
    members: dict[str, dict[str, float]] = defaultdict(dict)
    for job_id, task, _priority in jobs:
        members[outstanding_key(TASK_QUEUES[task])][job_id] = now
    with redis_client(str(app.conf.broker_url)).pipeline(transaction=False) as pipe:
        for key, scores in members.items():
            pipe.zadd(key, scores, nx=True)
        pipe.execute()


def job_groups(
    jobs: Sequence[tuple[str, TaskName, int]], group_size: int
) -> Iterator[tuple[TaskName, int, tuple[str, ...]]]:
    """`(task, priority, job ids)` per message: jobs of one task and priority, in the order given, up
    to `group_size` together on a grouped queue (`GROUPED_QUEUES`), one by one on the others."""
    by_kind: dict[tuple[TaskName, int], list[str]] = defaultdict(list)
    for job_id, task, priority in jobs:
        by_kind[(task, priority)].append(job_id)
    for (task, priority), ids in by_kind.items():
        size = group_size if TASK_QUEUES[task] in GROUPED_QUEUES else 1
        for start in range(0, len(ids), size):
            yield task, priority, tuple(ids[start : start + size])


def _publish(app: Celery, jobs: Sequence[tuple[str, TaskName, int]], countdown: float | None) -> None:
    amqp = app.amqp
    reply_to = app.thread_oid
    group_size = int(app.conf.get(JOB_GROUP_SIZE_CONF) or 1)
    with app.producer_or_acquire() as producer, producer.batch(max_size=_batch_size(len(jobs))):
        declared: set[str] = set()
        for task, priority, job_ids in job_groups(jobs, group_size):
            name = celery_task_name(task)
            queue = amqp.queues[TASK_QUEUES[task].value]
            if queue.name not in declared:  # a no-op after the first time on a connection
                producer.maybe_declare(queue)
                declared.add(queue.name)
            message = amqp.create_task_message(
                job_ids[0] if len(job_ids) == 1 else str(uuid.uuid4()),  # a lone job's id names its task
                name,
                job_ids,
                {},
                countdown=countdown or None,
                reply_to=reply_to,
                ignore_result=True,
                argsrepr=repr(job_ids),
                kwargsrepr="{}",
            )
            amqp.send_task_message(
                producer,
                name,
                message,
                queue=queue,
                priority=celery_priority(priority),
                declare=[],
                retry=False,
            )


def _batch_size(count: int) -> int:
    return max(1, min(count, PIPELINE_MAX_COMMANDS))
