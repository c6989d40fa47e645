"""The one path to a job's terminal state, for the worker, the sweeper and the API's cancel.

`end_jobs` takes jobs to their terminal states in one transaction and then tells the fleet:

1. the conditional write (`shared.db.repository.finish`, or `shared.db.worker_ends.finish_many` for a
   worker's own outcomes: one statement per batch): the first terminal state wins, in job-id order (one
   lock order for every batch), the transaction run again if it lost a lock conflict;
2. the `completed` webhook delivery row of each job that subscribes to it, in the same transaction,
   so the event exists if and only if the state does;
3. after the commit, in one Redis round trip per batch: the job leaves its queue's outstanding set
   and its status is published on its events channel (`shared.events`); a running job ended by
   anyone but its own worker (a cancel, the sweeper) is aborted in its engine (`CANCEL_CHANNEL`, one
   more round trip); its tenant's quota reservation is returned less what it used
   (`shared.quotas.budget.refund`: once per job, one more round trip);
4. the delivery ids are made due in the webhook queue;
5. each ended job's usage moves its tenant's `textfleet_usage_*` counters (`shared.usage`), once: only
   the transaction that wrote its terminal state reports it.

Steps 3 and 4 are best effort: the database already holds the truth, waiters re-read after their
timeout, and the sweeper prunes the outstanding sets and re-sends lost deliveries. The worker's claim
batch, which ends jobs whose TTL passed inside its own transaction, uses the two halves (`write`,
`announce`) directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
import structlog
from sqlalchemy.orm import Session

from shared.constants import CANCEL_CHANNEL
from shared.db import repository
from shared.db.conflicts import retry_conflicts
from shared.db.repository import AnyRow
from shared.db.worker_ends import WORKER_END_STATUSES, finish_many
from shared.events import announce_terminals
from shared.logging import safe_message
from shared.quotas.budget import refund
from shared.schemas import JobStatus
from shared.usage import JobUsage, count_ended
from shared.webhooks.queue import enqueue_deliveries
from shared.webhooks.records import record_event

__all__ = ["Completion", "Ended", "Endings", "announce", "end_jobs", "write"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Completion:
    """A job's outcome: the terminal state to write, whoever decided it (worker, sweeper, API)."""

    job_id: str
    status: JobStatus
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    usage: dict[str, int] | None = None
    #: Texts a succeeded classifier job classified (`shared.usage.classified_texts`); None otherwise.
    classified_texts: int | None = None
    #: The claimant: only it may finish the job (None: anyone, e.g. a cancel or the sweeper).
    worker: str | None = None
    #: The states the job may be in, tried in order; it ends only from one of them.
    expected: tuple[JobStatus, ...] = (JobStatus.RUNNING,)

    @classmethod
    def canceled(cls, job_id: str) -> Completion:
        """A client's cancel: a queued or running job ends `canceled`."""
        return cls(
            job_id,
            JobStatus.CANCELED,
            error=repository.CANCELED_ERROR,
            expected=(JobStatus.QUEUED, JobStatus.RUNNING),
        )

    @classmethod
    def expired(cls, job_id: str, ttl_s: float, expected: JobStatus, worker: str | None = None) -> Completion:
        """A job whose TTL passed (`repository.ttl_passed`) ends `expired` without running."""
        return cls(
            job_id,
            JobStatus.EXPIRED,
            error=repository.expired_error(ttl_s),
            worker=worker,
            expected=(expected,),
        )


@dataclass(frozen=True)
class Ended:
    """A job a transaction ended: what announcing it needs."""

    job_id: str
    task: str
    status: JobStatus
    previous: JobStatus  # the state it ended from
    #: What it adds to its tenant's usage (read back from the row its end wrote).
    usage: JobUsage | None = None


@dataclass
class Endings:
    """What a transaction ended and recorded, to announce once it committed."""

    ended: list[Ended] = field(default_factory=list)
    #: Running jobs ended by someone else than their worker: aborted in their engine.
    aborts: list[str] = field(default_factory=list)
    #: Webhook delivery ids recorded in the transaction (`completed`, and the claim's `started`).
    deliveries: list[str] = field(default_factory=list)
    #: (job id, completion tokens used) of each ended job: its tenant's reservation is returned less
    #: what it used (`shared.quotas.budget.refund`, once per job however often it is reported).
    refunds: list[tuple[str, int]] = field(default_factory=list)


def write(session: Session, completions: list[Completion], endings: Endings) -> list[Ended | None]:
    """Steps 1 and 2 in the caller's transaction: per completion, the job it ended, or None when
    another state was written first. A worker's own outcomes (succeeded or failed, from `running`)
    are written in one statement per worker (`worker_ends.finish_many`); any other completion (a
    cancel, the sweeper's ends, an expiry) by one conditional update each, in the order given."""
    written: dict[int, tuple[AnyRow, JobStatus]] = {}  # position -> (changed row, state it left)
    groups: dict[str, list[int]] = {}
    grouped_ids: set[str] = set()
    for i, c in enumerate(completions):
        own = c.expected == (JobStatus.RUNNING,) and c.status in WORKER_END_STATUSES
        if own and c.worker is not None and c.job_id not in grouped_ids:  # a job named again: below
            groups.setdefault(c.worker, []).append(i)
            grouped_ids.add(c.job_id)
    grouped = {i for positions in groups.values() for i in positions}
    for worker, positions in groups.items():
        changed = finish_many(session, [completions[i] for i in positions], worker=worker)
        for i in positions:
            if (row := changed.get(completions[i].job_id)) is not None:
                written[i] = (row, JobStatus.RUNNING)
    for i, c in enumerate(completions):
        for expected in () if i in grouped else c.expected:
            row = repository.finish(
                session,
                c.job_id,
                c.status,
                result=c.result,
                error=c.error,
                usage=c.usage,
                classified_texts=c.classified_texts,
                expected=expected,
                worker=c.worker,
            )
            if row is not None:
                written[i] = (row, expected)
                break
    return [_ended(session, c, written.get(i), endings) for i, c in enumerate(completions)]


def _ended(
    session: Session, c: Completion, written: tuple[AnyRow, JobStatus] | None, endings: Endings
) -> Ended | None:
    """Record what writing `c` did (`written`: the row it changed and the state it left; None: nothing)."""
    if written is None:
        log.warning(
            "job.finish_ignored",
            job_id=c.job_id,
            status=c.status.value,
            expected=[e.value for e in c.expected],
        )
        return None
    row, expected = written
    ended = Ended(c.job_id, row.task, c.status, expected, JobUsage.from_row(row))
    endings.ended.append(ended)
    endings.refunds.append((c.job_id, (c.usage or {}).get("completion_tokens", 0)))
    if expected is JobStatus.RUNNING and c.worker is None:
        endings.aborts.append(c.job_id)
    delivery = record_event(session, row, "completed")
    if delivery is not None:
        endings.deliveries.append(delivery.id)
    return ended


def announce(client: redis.Redis, endings: Endings) -> None:
    """Steps 3 to 5, after the commit; failures are logged, never raised."""
    count_ended(e.usage for e in endings.ended if e.usage is not None)
    if endings.ended or endings.aborts:
        try:
            announce_terminals(client, [(e.job_id, e.task, e.status.value) for e in endings.ended])
            if endings.aborts:
                with client.pipeline(transaction=False) as pipe:
                    for job_id in endings.aborts:
                        pipe.publish(CANCEL_CHANNEL, job_id)
                    pipe.execute()
        except Exception as exc:  # waiters time out and re-read; the sweeper prunes the sets
            log.warning("job.announce_failed", count=len(endings.ended), error=safe_message(exc))
    if endings.refunds:
        try:
            refund(client, endings.refunds)
        except Exception as exc:  # what it held is freed when its windows end
            log.warning("quota.refund_failed", count=len(endings.refunds), error=safe_message(exc))
    if endings.deliveries:
        try:
            enqueue_deliveries(client, endings.deliveries)
        except Exception as exc:  # the sweeper re-sends deliveries that are overdue and unqueued
            log.warning("webhook.enqueue_failed", count=len(endings.deliveries), error=safe_message(exc))


def end_jobs(session: Session, client: redis.Redis, completions: list[Completion]) -> list[Ended | None]:
    """Take jobs to their terminal states (steps 1-4): per completion, in the order given, the job it
    ended, or None when another terminal state (or state) was there first.

    `session` must hold no other pending work: it is committed here (and rolled back and run again
    when the transaction lost a lock conflict). `client` is the broker's Redis."""
    order = sorted(range(len(completions)), key=lambda i: completions[i].job_id)  # one lock order

    def transaction() -> tuple[list[Ended | None], Endings]:
        endings = Endings()
        try:
            ended = write(session, [completions[i] for i in order], endings)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        return ended, endings

    in_order, endings = retry_conflicts(transaction)
    announce(client, endings)
    out: list[Ended | None] = [None] * len(completions)
    for position, ended in zip(order, in_order, strict=True):
        out[position] = ended
    return out
