"""1,000 concurrent submissions against one key, spread over two API replicas, with a token budget for
far fewer: what is admitted never passes the budget, and once the admitted jobs end (through the
worker's own store, some reported twice, one canceled) and their unused tokens come back, the budget
is spent again without ever being overspent: Redis and the database's record agree throughout."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest
import redis

from shared.db import session_scope
from shared.lifecycle import Completion
from shared.quotas.budget import usage
from shared.quotas.record import recorded_tokens
from shared.quotas.tenant_limits import set_overrides
from shared.schemas import JobStatus
from tests.api.conftest import Serve
from tests.utils.tenancy import auth_headers, make_key
from workers.store import JobStore

BUDGET = 20_000
SUBMISSIONS = 1000
#: The second wave only has to show that returned tokens are admitted again, and no more.
SECOND_WAVE = 400


def _wait_past_midnight() -> None:
    """The day budget is per UTC day: a run that straddles midnight would see two budgets."""
    now = time.time()
    left = 86400 - now % 86400
    if left < 120:
        time.sleep(left + 1)


async def _submit_all(urls: list[str], headers: dict[str, str], sizes: list[int]) -> list[httpx.Response]:
    # A connection per request (no keep-alive): no request races the server closing an idle one.
    limits = httpx.Limits(max_connections=250, max_keepalive_connections=0)
    clients = [httpx.AsyncClient(base_url=u, headers=headers, timeout=120, limits=limits) for u in urls]
    try:
        body = {"task": "generate", "input": {"prompt": "hi"}}
        return await asyncio.gather(
            *(
                clients[i % len(clients)].post("/v1/jobs", json={**body, "params": {"max_tokens": n}})
                for i, n in enumerate(sizes)
            )
        )
    finally:
        for client in clients:
            await client.aclose()


def _admitted(responses: list[httpx.Response], sizes: list[int]) -> dict[str, int]:
    """job id -> max_tokens of each admitted submission; every other one a clean 429."""
    admitted: dict[str, int] = {}
    for response, size in zip(responses, sizes, strict=True):
        if response.status_code == 202:
            admitted[response.json()["id"]] = size
        else:
            assert response.status_code == 429, response.text
            assert response.json()["error"]["code"] == "token_budget_exceeded"
            assert int(response.headers["Retry-After"]) >= 1
    return admitted


@pytest.mark.timeout(900)  # 1,400 submissions and 500 job ends on a shared 2-core machine
def test_a_thousand_concurrent_submissions_never_overspend_the_budget(
    serve: Serve, database_url: str, redis_url: str
) -> None:
    _wait_past_midnight()
    tenant = f"burst-{secrets.token_hex(3)}"
    with session_scope(database_url) as session:
        set_overrides(session, tenant, {"tokens_per_day": BUDGET})
    headers = auth_headers(make_key(database_url, tenant))
    replicas = [serve(auth_enabled="true").url, serve(auth_enabled="true").url]
    rng = random.Random(12)
    sizes = [rng.randint(10, 64) for _ in range(SUBMISSIONS)]  # ~37,000 tokens asked for in all
    since = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    broker = redis.Redis.from_url(redis_url)
    store = JobStore(database_url, broker)
    try:
        first = _admitted(asyncio.run(_submit_all(replicas, headers, sizes)), sizes)
        spent = sum(first.values())
        assert spent <= BUDGET
        assert spent > BUDGET - max(sizes)  # it filled up: refusals were not spurious
        assert usage(broker, tenant).tokens_today == spent
        with session_scope(database_url) as session:
            assert recorded_tokens(session, tenant, since) == spent

        # The admitted jobs end as a worker ends them, each using part of what it reserved; a few
        # ends are reported twice (a retried report), one job is canceled instead.
        used: dict[str, int] = {}
        ids = sorted(first)
        canceled = ids.pop()
        assert httpx.post(f"{replicas[0]}/v1/jobs/{canceled}/cancel", headers=headers).status_code == 200
        used[canceled] = 0
        used.update({job_id: rng.randint(0, first[job_id]) for job_id in ids})

        again = set(ids[::8])

        def end(job_id: str) -> None:
            assert store.claim(job_id, "quota-test-worker") is not None
            tokens = {"prompt_tokens": 1, "completion_tokens": used[job_id]}
            result = {"text": "x", "finish_reason": "stop", "usage": tokens}
            completion = Completion(
                job_id, JobStatus.SUCCEEDED, result=result, usage=tokens, worker="quota-test-worker"
            )
            assert store.finish(completion)
            if job_id in again:  # reported again: ignored, refunded once
                assert not store.finish(completion)

        with ThreadPoolExecutor(max_workers=32) as pool:  # the store batches concurrent claims and ends
            list(pool.map(end, ids))
        held = sum(used.values())
        assert usage(broker, tenant).tokens_today == held
        assert usage(broker, tenant).open_jobs == 0
        with session_scope(database_url) as session:
            assert recorded_tokens(session, tenant, since) == held

        # What came back is spent again, concurrently; still never more than the budget.
        second = _admitted(
            asyncio.run(_submit_all(replicas, headers, sizes[:SECOND_WAVE])), sizes[:SECOND_WAVE]
        )
        total = held + sum(second.values())
        assert second, "the returned tokens were not admitted again"
        assert total <= BUDGET
        assert total > BUDGET - max(sizes)
        assert usage(broker, tenant).tokens_today == total
        with session_scope(database_url) as session:
            assert recorded_tokens(session, tenant, since) == total
    finally:
        store.close()
        broker.close()
