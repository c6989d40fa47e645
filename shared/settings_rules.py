"""The rules between settings (checked when `Settings` is built): each rule is a condition that
breaks it and the message that names the settings involved, why the rule exists, and the values.

Kept beside `shared.settings` so the list of rules reads as one list; `Settings` calls
`cross_field_problems` from its model validator and raises them all in one error.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["RuleInputs", "cross_field_problems"]


class RuleInputs(Protocol):
    """The settings the rules read (`shared.settings.Settings` is one; no import needed here)."""

    @property
    def broker_visibility_timeout_s(self) -> float: ...
    @property
    def default_max_tokens(self) -> int: ...
    @property
    def default_timeout_s(self) -> float: ...
    @property
    def max_model_len(self) -> int: ...
    @property
    def max_timeout_s(self) -> float: ...
    @property
    def max_tokens_limit(self) -> int: ...
    @property
    def retry_backoff_max_s(self) -> float: ...
    @property
    def retry_backoff_s(self) -> float: ...
    @property
    def risk_high_threshold(self) -> float: ...
    @property
    def risk_medium_threshold(self) -> float: ...
    @property
    def running_grace_s(self) -> float: ...
    @property
    def webhook_breaker_cooldown_s(self) -> float: ...
    @property
    def webhook_breaker_max_cooldown_s(self) -> float: ...
    @property
    def webhook_concurrency(self) -> int: ...
    @property
    def webhook_endpoint_concurrency(self) -> int: ...


def cross_field_problems(s: RuleInputs) -> list[str]:
    """What each broken cross-field rule says (nothing when all hold)."""
    run = s.max_timeout_s + s.running_grace_s
    visibility = s.broker_visibility_timeout_s
    rules = [
        (
            s.default_max_tokens > s.max_tokens_limit,
            f"default_max_tokens must not exceed max_tokens_limit ({s.default_max_tokens} > "
            f"{s.max_tokens_limit})",
        ),
        (
            s.max_tokens_limit >= s.max_model_len,
            f"max_tokens_limit ({s.max_tokens_limit}) must be below max_model_len ({s.max_model_len}): "
            "a generation needs room for its prompt in the engine's context",
        ),
        (
            s.default_timeout_s > s.max_timeout_s,
            f"default_timeout_s must not exceed max_timeout_s ({s.default_timeout_s:g} > "
            f"{s.max_timeout_s:g}): a job that gives no timeout_s would run longer than any may ask for",
        ),
        (
            run >= visibility,
            f"broker_visibility_timeout_s ({visibility:g}) must exceed max_timeout_s + running_grace_s "
            f"({run:g}): tasks are acknowledged late, so a job still running when its message becomes "
            "visible again would be delivered twice",
        ),
        (
            s.retry_backoff_max_s >= visibility,
            f"broker_visibility_timeout_s ({visibility:g}) must exceed retry_backoff_max_s "
            f"({s.retry_backoff_max_s:g}): a retry waiting for its countdown is held unacknowledged",
        ),
        (
            s.retry_backoff_s > s.retry_backoff_max_s,
            f"retry_backoff_s must not exceed retry_backoff_max_s ({s.retry_backoff_s:g} > "
            f"{s.retry_backoff_max_s:g})",
        ),
        (
            s.risk_medium_threshold > s.risk_high_threshold,
            "risk_medium_threshold must not exceed risk_high_threshold",
        ),
        (
            s.webhook_endpoint_concurrency > s.webhook_concurrency,
            "webhook_endpoint_concurrency must not exceed webhook_concurrency",
        ),
        (
            s.webhook_breaker_cooldown_s > s.webhook_breaker_max_cooldown_s,
            "webhook_breaker_cooldown_s must not exceed webhook_breaker_max_cooldown_s",
        ),
    ]
    return [message for broken, message in rules if broken]
