"""Webhook worker settings: defaults and the cross-field rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.settings import Settings


def test_defaults_are_consistent() -> None:
    settings = Settings()
    assert settings.webhook_endpoint_concurrency <= settings.webhook_concurrency
    assert settings.webhook_breaker_cooldown_s <= settings.webhook_breaker_max_cooldown_s
    assert settings.webhook_http2 is False


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"webhook_concurrency": 10, "webhook_endpoint_concurrency": 20},
            "webhook_endpoint_concurrency must not exceed webhook_concurrency",
        ),
        (
            {"webhook_breaker_cooldown_s": 600, "webhook_breaker_max_cooldown_s": 60},
            "webhook_breaker_cooldown_s must not exceed webhook_breaker_max_cooldown_s",
        ),
        ({"webhook_batch": 0}, "webhook_batch"),
    ],
)
def test_inconsistent_values_are_refused(values: dict[str, float], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**values)  # type: ignore[arg-type]
