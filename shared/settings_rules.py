"""The rules between settings (checked when `Settings` is built): each rule is a condition that
breaks it and the message that names the settings involved, why the rule exists, and the values.

Kept beside `shared.settings` so the list of rules reads as one list; `Settings` calls
`cross_field_problems` from its model validator and raises them all in one error.
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import urlsplit

from pydantic import SecretStr

__all__ = ["WEAK_SECRETS", "RuleInputs", "cross_field_problems", "secret_problems"]

#: Values that are no secret: the defaults of images and tutorials, and placeholders of our docs.
WEAK_SECRETS = frozenset(
    {"postgres", "password", "changeme", "change-me", "secret", "admin", "root", "textfleet", "test"}
    | {"minioadmin", "redis", "example", "default", "whsec_", "whsec_..."}
)


class _FilesSecrets(Protocol):
    @property
    def files_s3_secret_access_key(self) -> SecretStr | None: ...


class RuleInputs(Protocol):
    """The settings the rules read (`shared.settings.Settings` is one; no import needed here)."""

    @property
    def broker_visibility_timeout_s(self) -> float: ...
    @property
    def database_url(self) -> str: ...
    @property
    def default_max_tokens(self) -> int: ...
    @property
    def default_timeout_s(self) -> float: ...
    @property
    def environment(self) -> str: ...
    @property
    def files(self) -> _FilesSecrets: ...
    @property
    def max_model_len(self) -> int: ...
    @property
    def max_timeout_s(self) -> float: ...
    @property
    def max_tokens_limit(self) -> int: ...
    @property
    def redis_url(self) -> str: ...
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
    @property
    def webhook_secret(self) -> SecretStr | None: ...


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
    return [message for broken, message in rules if broken] + secret_problems(s)


def secret_problems(s: RuleInputs) -> list[str]:
    """In production, every secret that is set must be one: not empty, not a known default or a
    placeholder (`WEAK_SECRETS`, `<...>`), nor a password of a database or Redis URL. An unset secret
    turns its feature off (or leaves the credential to the driver: peer auth, a .pgpass file). The
    values are never repeated in the message."""
    if s.environment != "production":
        return []
    found = {
        "webhook_secret": _value(s.webhook_secret),
        "files_s3_secret_access_key": _value(s.files.files_s3_secret_access_key),
        "the password in database_url": _password(s.database_url),
        "the password in redis_url": _password(s.redis_url),
    }
    return [
        f"environment=production refuses {what}: {why} (set a real secret, e.g. from a file through "
        "TEXTFLEET_<NAME>_FILE)"
        for what, value in found.items()
        if value is not None and (why := _weakness(value))
    ]


def _value(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:  # a URL the driver will refuse anyway
        return None


def _weakness(value: str) -> str | None:
    """Why `value` is no secret (None when it may be one)."""
    stripped = value.strip()
    if not stripped:
        return "it is empty"
    if stripped.lower() in WEAK_SECRETS or stripped.startswith("<") or "..." in stripped:
        return "it is a well-known default or a placeholder"
    return None
