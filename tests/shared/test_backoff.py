"""`shared.backoff`: the one backoff rule (job retries double and cap; webhook retries follow a
schedule, jittered below it)."""

from __future__ import annotations

import random

from shared.backoff import backoff_s, doubling


def test_job_retries_double_and_cap() -> None:
    assert [backoff_s(n, doubling(2.0, 10.0)) for n in (1, 2, 3, 4, 5)] == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert doubling(2.0, 10.0) == (2.0, 4.0, 8.0, 10.0)
    assert doubling(5.0, 1.0) == (1.0,)  # a first delay above the cap is the cap


def test_doubling_matches_base_times_two_to_the_attempt_capped() -> None:
    for base, cap in [(0.01, 30.0), (2.0, 2.0), (3.0, 10.0), (0.1, 0.8), (0.5, 3600.0)]:
        schedule = doubling(base, cap)
        for attempt in range(1, 40):
            assert backoff_s(attempt, schedule) == min(cap, base * 2 ** (attempt - 1)), (base, cap, attempt)


def test_no_wait_before_a_first_attempt_and_jitter_stays_below() -> None:
    assert backoff_s(0, (5.0, 30.0)) == 0.0
    assert backoff_s(3, ()) == 0.0
    rng = random.Random(3)
    delays = [backoff_s(2, (5.0, 30.0), jitter=0.5, rng=rng) for _ in range(100)]
    assert all(15.0 <= d <= 30.0 for d in delays) and len(set(delays)) > 50
