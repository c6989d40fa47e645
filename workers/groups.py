"""Running the jobs of one message: one job, or a group of them (`shared.queueing.job_groups`).

A group keeps every job's own semantics (`workers.execution`: its claim, TTL, time limit, retries,
cancel, webhook events, exactly one terminal state) and saves what is per message: one delivery and
one acknowledgement from the broker, and one Celery task. Its jobs go to the process's `JobRunner`
(`workers.runner`), which claims them with other messages' jobs while the worker holds fewer than its
concurrency, and runs them on its pool. The message is acknowledged (late, as every task) when all
its jobs have ended. A worker that begins draining claims no more: the jobs it did not claim stay
`queued`, and the message goes back to the queue for another worker (`run_message` returns them; the
Celery task rejects the message with requeue), where the jobs that did run are skipped as no longer
queued.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import wait
from dataclasses import dataclass, field

import structlog

from shared.constants import PRIORITY_DEFAULT, TaskName
from shared.schemas import JobStatus
from workers.execution import claimed, run_claimed
from workers.runner import JobLeftError, JobRunner
from workers.runtime import WorkerRuntime

__all__ = ["MessageOutcome", "attach_runner", "run_message"]

log = structlog.get_logger(__name__)


@dataclass
class MessageOutcome:
    """What became of a message's jobs: each run job's status (None: not ours to finish, see
    `execute`), and the ids left unclaimed because the worker began draining."""

    statuses: dict[str, JobStatus | None] = field(default_factory=dict)
    left: list[str] = field(default_factory=list)


def attach_runner(rt: WorkerRuntime, concurrency: int) -> JobRunner:
    """Give `rt` its job runner: at most `concurrency` jobs at once, on this worker's job path."""
    rt.runner = JobRunner(
        concurrency,
        claim=lambda job_ids: rt.store.claim_many(job_ids, rt.hostname),
        ready=claimed,
        run=lambda claim, task: run_claimed(claim, task, rt),
        draining=rt.draining,
    )
    return rt.runner


def run_message(
    job_ids: Sequence[str], task: TaskName, rt: WorkerRuntime, priority: int = PRIORITY_DEFAULT
) -> MessageOutcome:
    """Run the jobs one message carries, at its priority; returns when each has ended or was left (see
    module doc)."""
    runner = rt.runner or attach_runner(rt, rt.settings.classify_concurrency)
    unique = list(dict.fromkeys(job_ids))  # a job named twice in a message runs once
    futures = runner.submit(unique, task, priority)
    wait(futures)
    outcome = MessageOutcome()
    for job_id, future in zip(unique, futures, strict=True):
        error = future.exception()
        if isinstance(error, JobLeftError):
            outcome.left.append(job_id)
        elif error is not None:
            raise error
        else:
            outcome.statuses[job_id] = future.result()
    if outcome.left:
        log.info("message.left", task=task.value, jobs=len(outcome.left), reason="worker draining")
    return outcome
