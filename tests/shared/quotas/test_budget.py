"""Reservations in real Redis: all or nothing across limits and tenants, refunds exactly once, and
many concurrent reservations never taking more than a budget holds."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from shared.errors import InvalidInputError, QuotaExceededError
from shared.quotas.budget import Request, refund, reserve, usage


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url, socket_timeout=10)
    yield c
    c.close()


def _tenant() -> str:
    return f"t-{secrets.token_hex(4)}"


def _jobs(n: int, tokens: int) -> list[tuple[str, int]]:
    return [(f"job-{secrets.token_hex(6)}", tokens) for _ in range(n)]


def test_reserve_takes_jobs_and_tokens_and_refund_returns_the_unused_part(client: redis.Redis) -> None:
    tenant = _tenant()
    jobs = _jobs(3, 100)
    reserve(client, [Request(tenant, 10, 1000, 5000, jobs)])
    assert usage(client, tenant).open_jobs == 3
    assert usage(client, tenant).tokens_today == 300
    assert refund(client, [(jobs[0][0], 40)]) == 1
    held = usage(client, tenant)
    assert (held.open_jobs, held.tokens_this_minute, held.tokens_today) == (2, 240, 240)


def test_a_refund_lands_once_however_often_the_end_is_reported(client: redis.Redis) -> None:
    tenant = _tenant()
    jobs = _jobs(1, 100)
    reserve(client, [Request(tenant, None, None, 1000, jobs)])
    assert refund(client, [(jobs[0][0], 10)]) == 1
    assert refund(client, [(jobs[0][0], 0), (jobs[0][0], 0)]) == 0  # a retry, a cancel after the end
    assert usage(client, tenant).tokens_today == 10
    assert refund(client, [("never-reserved", 0)]) == 0


def test_over_the_day_budget_is_a_429_with_the_time_to_the_next_day_and_takes_nothing(
    client: redis.Redis,
) -> None:
    tenant = _tenant()
    reserve(client, [Request(tenant, None, None, 1000, _jobs(9, 100))])
    with pytest.raises(QuotaExceededError) as caught:
        reserve(client, [Request(tenant, None, None, 1000, _jobs(2, 100))])
    assert caught.value.code == "token_budget_exceeded"
    assert 1 <= caught.value.retry_after_s <= 86400
    assert usage(client, tenant).tokens_today == 900
    assert usage(client, tenant).open_jobs == 9


def test_a_request_larger_than_the_budget_itself_is_a_422(client: redis.Redis) -> None:
    with pytest.raises(InvalidInputError) as caught:
        reserve(client, [Request(_tenant(), None, 500, None, _jobs(6, 100))])
    assert caught.value.code == "token_budget_too_small"
    assert "per minute" in caught.value.message
    with pytest.raises(InvalidInputError) as too_many:
        reserve(client, [Request(_tenant(), 5, None, None, _jobs(6, 0))])
    assert too_many.value.code == "too_many_jobs"


def test_the_unfinished_jobs_cap_is_a_429_until_one_ends(client: redis.Redis) -> None:
    tenant = _tenant()
    first = _jobs(2, 0)
    reserve(client, [Request(tenant, 2, None, None, first)])
    with pytest.raises(QuotaExceededError) as caught:
        reserve(client, [Request(tenant, 2, None, None, _jobs(1, 0))])
    assert caught.value.code == "queue_limit_exceeded"
    refund(client, [(first[0][0], 0)])
    reserve(client, [Request(tenant, 2, None, None, _jobs(1, 0))])
    assert usage(client, tenant).open_jobs == 2


def test_several_tenants_are_all_or_nothing(client: redis.Redis) -> None:
    rich, poor = _tenant(), _tenant()
    reserve(client, [Request(poor, 2, None, None, _jobs(1, 50))])
    with pytest.raises(QuotaExceededError):
        reserve(
            client,
            [Request(rich, None, None, None, _jobs(2, 50)), Request(poor, 2, None, None, _jobs(2, 50))],
        )
    assert usage(client, rich).open_jobs == 0
    assert usage(client, rich).tokens_today == 0
    assert usage(client, poor).open_jobs == 1


def test_batch_jobs_take_the_day_budget_only(client: redis.Redis) -> None:
    tenant = _tenant()
    reserve(client, [Request(tenant, None, None, 10_000, _jobs(50, 100), track_open=False)])
    held = usage(client, tenant)
    assert (held.open_jobs, held.tokens_this_minute, held.tokens_today) == (0, 0, 5000)


def test_concurrent_reservations_never_take_more_than_the_budget(client: redis.Redis) -> None:
    tenant, budget = _tenant(), 10_000
    sizes = [37 + (i % 7) * 13 for i in range(1000)]  # 1,000 requests asking for 74,000 tokens in all

    def one(tokens: int) -> int:
        try:
            reserve(client, [Request(tenant, None, None, budget, _jobs(1, tokens))])
        except QuotaExceededError:
            return 0
        return tokens

    with ThreadPoolExecutor(max_workers=64) as pool:
        admitted = sum(pool.map(one, sizes))
    assert admitted <= budget
    assert admitted > budget - max(sizes)  # it filled up: the refusals were not spurious
    assert usage(client, tenant).tokens_today == admitted
