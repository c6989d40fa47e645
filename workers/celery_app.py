"""The Celery app of the workers: the shared app with one task per job kind registered on it.

Each task's only argument is the job id; the database holds everything else. Tasks are
acknowledged late (after the job's terminal state is written) and are idempotent: a redelivered
message finds the job no longer `queued` and does nothing.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from shared.constants import TaskName, celery_task_name
from shared.queueing import get_celery
from workers import runtime
from workers.broker import configure_worker_broker
from workers.execution import execute

__all__ = ["app", "register_tasks", "tasks"]


def register_tasks(celery: Celery) -> dict[TaskName, Any]:
    """Register `textfleet.<task>` for every task kind on `celery`."""
    registered: dict[TaskName, Any] = {}
    for task in TaskName:

        def run(job_id: str, _task: TaskName = task) -> str | None:
            status = execute(job_id, _task, runtime.current())
            return status.value if status is not None else None

        registered[task] = celery.task(run, name=celery_task_name(task), acks_late=True, ignore_result=True)
    return registered


app = get_celery()
# Consumers ride out broker loss: kombu's Redis transport fixed, quick unbounded reconnects.
configure_worker_broker(app)
tasks = register_tasks(app)
