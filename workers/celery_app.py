"""The Celery app of the workers: the shared app with one task per job kind registered on it.

A task's arguments are the ids of the jobs its message carries, one or a group
(`workers.groups`); the database holds everything else. Tasks are acknowledged late (after the jobs'
terminal states are written) and are idempotent: a redelivered message finds its jobs no longer
`queued` and does nothing for them.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.exceptions import Reject

from shared.constants import TaskName, celery_task_name
from shared.queueing import get_celery, job_priority
from workers import runtime
from workers.broker import configure_worker_broker
from workers.groups import run_message

__all__ = ["app", "register_tasks", "tasks"]


def register_tasks(celery: Celery) -> dict[TaskName, Any]:
    """Register `textfleet.<task>` for every task kind on `celery`."""
    registered: dict[TaskName, Any] = {}
    for task in TaskName:

        def run(self: Task[Any, Any], *job_ids: str, _task: TaskName = task) -> str | None:
            outcome = run_message(job_ids, _task, runtime.current(), job_priority(self.request.delivery_info))
            if outcome.left:  # a draining worker: the jobs it did not start go to another one
                raise Reject(f"{len(outcome.left)} jobs left unclaimed: worker draining", requeue=True)
            if len(job_ids) != 1:
                return None
            status = outcome.statuses.get(job_ids[0])
            return status.value if status is not None else None

        registered[task] = celery.task(
            run, bind=True, name=celery_task_name(task), acks_late=True, ignore_result=True
        )
    return registered


app = get_celery()
# Consumers ride out broker loss: kombu's Redis transport fixed, quick unbounded reconnects.
configure_worker_broker(app)
tasks = register_tasks(app)
