"""Per-endpoint limits and circuit breakers: one bad receiver only delays its own events.

An endpoint is a URL's origin (scheme, host, port). Each has:

- a concurrency limit (`webhook_endpoint_concurrency` requests in flight); a delivery that finds it
  full is put back in the due set a moment later (about one response time of that endpoint), so a
  slow endpoint never holds the worker's capacity or the head of the due set;
- a circuit breaker: `closed` until `webhook_breaker_failures` attempts in a row fail, then `open`
  for a cooldown (`webhook_breaker_cooldown_s`, doubled on each failed probe up to
  `webhook_breaker_max_cooldown_s`), when its deliveries are put back in the due set at the end of the
  cooldown (with jitter) without an attempt; then `half_open`: one probe goes out, success closes the
  breaker, failure opens it again.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from shared.settings import Settings

__all__ = ["Endpoint", "Endpoints", "origin"]

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


@dataclass
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
        self.in_flight += 1
        return None

    def done(self, ok: bool, elapsed_s: float, now: float) -> bool:
        """Record a finished request; True when this one opened the breaker."""
        self.in_flight = max(0, self.in_flight - 1)
        self.latency_s = 0.8 * self.latency_s + 0.2 * elapsed_s
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
            if used < cutoff and endpoint.state == "closed" and endpoint.in_flight == 0:
                del self._by_origin[key], self._last_used[key]
