"""Per-endpoint limits and circuit breakers: one bad receiver only delays its own events.

An endpoint is a URL's origin (scheme, host, port). Each has:

- a concurrency limit (`webhook_endpoint_concurrency` requests in flight); deliveries beyond it wait
  in memory, but once the endpoint is slow (responses, or silence, over `SLOW_S`) at most one limit's
  worth waits and the rest go back to the due set for about one response time, so a slow endpoint
  never holds the worker's capacity or the head of the due set;
- a circuit breaker: `closed` until `webhook_breaker_failures` attempts in a row fail, then `open`
  for a cooldown (`webhook_breaker_cooldown_s`, doubled on each failed probe up to
  `webhook_breaker_max_cooldown_s`), when its deliveries are put back in the due set at the end of the
  cooldown (with jitter) without an attempt; then `half_open`: one probe goes out, success closes the
  breaker, failure opens it again.
"""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from shared.settings import Settings

__all__ = ["SLOW_S", "Endpoint", "Endpoints", "origin"]

#: An endpoint whose requests take longer than this is slow: few of its deliveries wait in memory.
SLOW_S = 1.0

State = Literal["closed", "open", "half_open"]


def origin(url: str) -> str:
    """`scheme://host:port` of a URL (the unit of limits and breakers); the URL itself if unparsable."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or (443 if scheme == "https" else 80)
        return f"{scheme}://{(parts.hostname or '').lower()}:{port}"
    except ValueError:
        return url


@dataclass(eq=False)
class Endpoint:
    """Limit and breaker of one origin (all times `time.monotonic()` seconds)."""

    limit: int
    failures_to_open: int
    base_cooldown_s: float
    max_cooldown_s: float
    in_flight: int = 0
    failures: int = 0  # consecutive failed attempts
    state: State = "closed"
    open_until: float = 0.0
    cooldown_s: float = 0.0
    latency_s: float = 0.05  # moving average of response times
    probing: bool = False
    #: deliveries pulled for this endpoint, waiting for room (at most `limit`; more wait in Redis)
    waiting: deque[Any] = field(default_factory=deque)

    progress_at: float = 0.0  # when a request of this endpoint last finished (or the first started)

    def slowness(self, now: float) -> float:
        """How long a request here takes now: the average, or longer while nothing has finished."""
        stalled = now - self.progress_at if self.in_flight else 0.0
        return max(self.latency_s, stalled)

    def blocked(self, now: float) -> float | None:
        """Seconds until the breaker lets a request through, or None (no side effects)."""
        if self.state == "open" and now < self.open_until:
            return self.open_until - now
        return None

    def admit(self, now: float) -> float | None:
        """None if a request may start now (and counts it in flight), else seconds to wait."""
        if self.state == "open":
            if now < self.open_until:
                return self.open_until - now
            self.state = "half_open"
        if self.state == "half_open":
            if self.probing:
                return max(0.5, min(self.cooldown_s, self.latency_s))
            self.probing = True
        elif self.in_flight >= self.limit:
            return max(0.05, self.latency_s)
        if not self.in_flight:
            self.progress_at = now
        self.in_flight += 1
        return None

    def done(self, ok: bool, elapsed_s: float, now: float) -> bool:
        """Record a finished request; True when this one opened the breaker."""
        self.in_flight = max(0, self.in_flight - 1)
        self.latency_s = 0.8 * self.latency_s + 0.2 * elapsed_s
        self.progress_at = now
        was_probe, self.probing = self.probing and self.state == "half_open", False
        if ok:
            self.failures = 0
            self.state = "closed"
            self.cooldown_s = 0.0
            return False
        self.failures += 1
        if was_probe or (self.state == "closed" and self.failures >= self.failures_to_open):
            if was_probe:
                self.cooldown_s = min(self.max_cooldown_s, max(self.base_cooldown_s, self.cooldown_s * 2))
            else:
                self.cooldown_s = self.base_cooldown_s
            self.state = "open"
            self.open_until = now + self.cooldown_s
            return True
        return False


class Endpoints:
    """The endpoints one worker has seen (those idle for `idle_s` are forgotten when closed)."""

    def __init__(self, settings: Settings, *, idle_s: float = 600.0) -> None:
        self.settings = settings
        self.idle_s = idle_s
        self._by_origin: dict[str, Endpoint] = {}
        self._last_used: dict[str, float] = {}
        self.rng = random.Random()

    def get(self, url: str) -> Endpoint:
        key = origin(url)
        endpoint = self._by_origin.get(key)
        if endpoint is None:
            endpoint = Endpoint(
                limit=self.settings.webhook_endpoint_concurrency,
                failures_to_open=self.settings.webhook_breaker_failures,
                base_cooldown_s=self.settings.webhook_breaker_cooldown_s,
                max_cooldown_s=self.settings.webhook_breaker_max_cooldown_s,
            )
            self._by_origin[key] = endpoint
        self._last_used[key] = time.monotonic()
        return endpoint

    def wait_with_jitter(self, wait_s: float) -> float:
        """A deferral with up to 10% jitter, so deferred deliveries do not return all at once."""
        return wait_s * (1.0 + 0.1 * self.rng.random())

    def open_count(self) -> int:
        """Breakers open or half-open now."""
        return sum(1 for e in self._by_origin.values() if e.state != "closed")

    def forget_idle(self) -> None:
        """Drop closed, idle endpoints (bounded memory with many receivers)."""
        cutoff = time.monotonic() - self.idle_s
        for key, used in list(self._last_used.items()):
            endpoint = self._by_origin[key]
            if (
                used < cutoff
                and endpoint.state == "closed"
                and not endpoint.in_flight
                and not endpoint.waiting
            ):
                del self._by_origin[key], self._last_used[key]
