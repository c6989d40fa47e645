"""The Celery application both sides share, and how the API enqueues a job by task name.

The API uses `send_job` only; workers import the same app and register the tasks on it. Celery has
no result backend here: the database is the source of truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from celery import Celery
from kombu.entity import Queue as KombuQueue

from shared.constants import PRIORITY_MAX, TASK_QUEUES, Queue, TaskName, celery_task_name
from shared.errors import QueueUnavailableError
from shared.settings import Settings, get_settings

__all__ = ["celery_priority", "get_celery", "make_celery", "send_job", "send_jobs"]

#: Seconds an unacknowledged message stays invisible before Redis redelivers it. Above the longest
#: allowed run time, so a slow job is not delivered twice while it is still running.
VISIBILITY_TIMEOUT_S = 3600


def celery_priority(priority: int) -> int:
    """Celery's Redis transport runs priority 0 first; ours runs 9 first."""
    return PRIORITY_MAX - priority


def make_celery(settings: Settings) -> Celery:
    """A Celery app configured for textfleet's broker and queues."""
    app = Celery("textfleet", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_default_queue=Queue.GENERATE.value,
        task_queues=[KombuQueue(q.value, routing_key=q.value) for q in Queue],  # type: ignore[no-untyped-call]
        task_routes={celery_task_name(t): {"queue": q.value} for t, q in TASK_QUEUES.items()},
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": VISIBILITY_TIMEOUT_S,
            "priority_steps": list(range(PRIORITY_MAX + 1)),
            "sep": ":",
            "queue_order_strategy": "priority",
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    return app


@lru_cache(maxsize=1)
def get_celery() -> Celery:
    """The process-wide Celery app for the current settings."""
    return make_celery(get_settings())


def send_job(app: Celery, job_id: str, task: TaskName | str, priority: int) -> None:
    """Enqueue one job by task name. Raises QueueUnavailableError if the broker refuses it."""
    send_jobs(app, [(job_id, TaskName(task), priority)])


def send_jobs(app: Celery, jobs: Sequence[tuple[str, TaskName, int]]) -> None:
    """Enqueue jobs over one broker connection."""
    try:
        with app.producer_or_acquire() as producer:
            for job_id, task, priority in jobs:
                app.send_task(
                    celery_task_name(task),
                    args=[job_id],
                    queue=TASK_QUEUES[task].value,
                    priority=celery_priority(priority),
                    producer=producer,
                    task_id=job_id,
                )
    except Exception as exc:  # kombu raises many kinds on a broken connection
        raise QueueUnavailableError(f"could not enqueue job: {exc}") from exc
