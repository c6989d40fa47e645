"""How long to wait before trying again: the one backoff rule of the fleet.

Job retries (a transient failure, `retry_backoff_s` doubling up to `retry_backoff_max_s`), restarts of
a dead child (`textfleet dev`, the GPU supervisor) and webhook delivery retries
(`shared.webhooks.policy.BACKOFF_SCHEDULE_S`, jittered) all read a schedule of delays with `backoff_s`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

__all__ = ["backoff_s", "doubling"]


def backoff_s(
    attempt: int, schedule: Sequence[float], *, jitter: float = 0.0, rng: random.Random | None = None
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based) before the next one: the
    schedule's `attempt`-th delay (its last one from there on; 0 before any attempt), drawn from
    [(1 - jitter) x, x] when `jitter` is given."""
    if attempt < 1 or not schedule:
        return 0.0
    delay = float(schedule[min(attempt, len(schedule)) - 1])
    if jitter:
        delay *= 1.0 - jitter * (rng or random).random()
    return delay


def doubling(base_s: float, max_s: float) -> tuple[float, ...]:
    """The schedule base, 2x base, 4x base, ... capped at (and ending with) `max_s`."""
    if base_s >= max_s:
        return (float(max_s),)
    steps = math.ceil(math.log2(max_s / base_s))
    return (*(float(min(max_s, base_s * 2**n)) for n in range(steps)), float(max_s))
