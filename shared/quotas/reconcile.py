"""The sweeper's repair of reservations against the record: a job that ended (or was never stored)
while its reservation was not returned (the process died between its commit and the refund, or
between the reservation and the insert) still holds a place among its tenant's unfinished jobs and
its tokens. `reconcile` returns those, as the refund would have: by the database, what a job used is
its `completion_tokens`. Refunds land once per job, so racing a normal refund is harmless."""

from __future__ import annotations

from typing import Any

import redis
from sqlalchemy import select

from shared.constants import QUOTA_PREFIX, SWEEP_BATCH
from shared.db import session_scope
from shared.db.models import Job
from shared.quotas.budget import refund
from shared.schemas import TERMINAL_STATUSES

__all__ = ["reconcile"]

#: A reservation younger than this may belong to jobs still being stored: left alone.
GRACE_S = 60.0


def reconcile(client: redis.Redis, database_url: str, *, grace_s: float = GRACE_S) -> int:
    """Return the reservations of ended or missing jobs found at the oldest end of every tenant's
    unfinished-jobs and batch-jobs sets (up to `SWEEP_BATCH` per set). How many jobs were let go."""
    terminal = {s.value for s in TERMINAL_STATUSES}
    seconds, _micro = client.time()
    cutoff = float(seconds) - grace_s
    released = 0
    keys = [*client.scan_iter(match=f"{QUOTA_PREFIX}*:open", count=500)]
    keys += client.scan_iter(match=f"{QUOTA_PREFIX}*:batch", count=500)
    for key in keys:
        oldest: list[Any] = client.zrangebyscore(key, "-inf", cutoff, start=0, num=SWEEP_BATCH)
        ids = [m.decode() if isinstance(m, bytes) else str(m) for m in oldest]
        if not ids:
            continue
        with session_scope(database_url) as session:
            rows = {
                row.id: row
                for row in session.execute(
                    select(Job.id, Job.status, Job.completion_tokens).where(Job.id.in_(ids))
                )
            }
        gone = [
            (job_id, int(rows[job_id].completion_tokens or 0) if job_id in rows else 0)
            for job_id in ids
            if job_id not in rows or rows[job_id].status in terminal
        ]
        if gone:
            refund(client, gone)
            client.zrem(key, *[job_id for job_id, _used in gone])  # also when the record had expired
            released += len(gone)
    return released
