"""The sweeper's repair: reservations of jobs that ended without their refund, or were never stored,
are returned by the database's record; unfinished jobs keep theirs."""

from __future__ import annotations

import secrets

import redis
from sqlalchemy import update

from shared.db import session_scope
from shared.db.models import Job
from shared.quotas.budget import Request, reserve, usage
from shared.quotas.reconcile import reconcile
from tests.utils.factories import insert_job


def test_ended_and_missing_jobs_give_back_their_reservations(database_url: str, clean_redis_url: str) -> None:
    client = redis.Redis.from_url(clean_redis_url)
    tenant = f"sweep-{secrets.token_hex(3)}"
    ended = insert_job(database_url, "generate")
    waiting = insert_job(database_url, "generate")
    never_stored = f"01MISSING{secrets.token_hex(8).upper()}"[:26]
    reserve(client, [Request(tenant, 10, None, 1000, [(ended, 100), (waiting, 100), (never_stored, 100)])])
    with session_scope(database_url) as session:  # ended, but its refund never ran (a crash)
        session.execute(update(Job).where(Job.id == ended).values(status="succeeded", completion_tokens=30))

    assert reconcile(client, database_url, grace_s=3600) == 0  # too young: may still be being stored
    assert reconcile(client, database_url, grace_s=0) == 2
    held = usage(client, tenant)
    assert (held.open_jobs, held.tokens_today) == (1, 130)  # the waiting job's 100 + the 30 used
    assert reconcile(client, database_url, grace_s=0) == 0  # once
    client.close()
