"""Settings: env prefix, JSON dict fields, validation and derived values."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from shared.settings import MODERATION_CATEGORIES, Settings


def test_env_prefix_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTFLEET_MAX_INPUT_CHARS", "100")
    monkeypatch.setenv("TEXTFLEET_MAX_NUM_SEQS", "8")
    settings = Settings()
    assert settings.max_input_chars == 100
    assert settings.effective_generate_concurrency == 8
    assert settings.generation_model_path.endswith("smollm2-135m-instruct")
    assert "redis_url" not in settings.model_fields_set


def test_moderation_thresholds_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTFLEET_MODERATION_THRESHOLDS", '{"hate": 0.2}')
    settings = Settings()
    assert settings.moderation_threshold("hate") == 0.2
    assert settings.moderation_threshold("violence") == settings.moderation_default_threshold
    assert len(MODERATION_CATEGORIES) == 13


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("TEXTFLEET_MODERATION_THRESHOLDS", '{"spam": 0.2}', "unknown moderation categories: spam"),
        ("TEXTFLEET_MODERATION_THRESHOLDS", '{"hate": 2}', "within [0, 1]"),
        ("TEXTFLEET_DEFAULT_MAX_TOKENS", "5000", "default_max_tokens must not exceed"),
        ("TEXTFLEET_RISK_MEDIUM_THRESHOLD", "0.9", "risk_medium_threshold must not exceed"),
    ],
)
def test_invalid_settings_name_the_problem(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, message: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Settings()


def test_every_setting_is_documented() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"


def test_json_logs_follow_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(environment="production").json_logs
    assert not Settings(environment="development").json_logs
    assert Settings(environment="development", log_format="json").json_logs


def test_the_defaults_keep_every_cross_field_rule() -> None:
    settings = Settings()
    assert settings.max_timeout_s + settings.running_grace_s < settings.broker_visibility_timeout_s
    assert settings.retry_backoff_max_s < settings.broker_visibility_timeout_s
    assert settings.default_timeout_s <= settings.max_timeout_s
    assert settings.max_tokens_limit < settings.max_model_len


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"max_timeout_s": 3600},
            "broker_visibility_timeout_s (3600) must exceed max_timeout_s + running_grace_s (3630)",
        ),
        (
            {"broker_visibility_timeout_s": 1800},
            "broker_visibility_timeout_s (1800) must exceed max_timeout_s + running_grace_s (1830)",
        ),
        (
            {"retry_backoff_max_s": 4000, "broker_visibility_timeout_s": 4000},
            "broker_visibility_timeout_s (4000) must exceed retry_backoff_max_s (4000)",
        ),
        ({"default_timeout_s": 900, "max_timeout_s": 600}, "default_timeout_s must not exceed max_timeout_s"),
        ({"retry_backoff_s": 90}, "retry_backoff_s must not exceed retry_backoff_max_s (90 > 60)"),
        ({"max_model_len": 1024}, "max_tokens_limit (1024) must be below max_model_len (1024)"),
    ],
)
def test_cross_field_rules_name_the_settings_and_values(values: dict[str, float], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        Settings(**values)  # type: ignore[arg-type]


def test_a_longer_run_is_allowed_with_a_longer_visibility_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTFLEET_MAX_TIMEOUT_S", "7200")
    monkeypatch.setenv("TEXTFLEET_BROKER_VISIBILITY_TIMEOUT_S", "10800")
    settings = Settings()
    assert (settings.max_timeout_s, settings.broker_visibility_timeout_s) == (7200, 10800)


def test_every_broken_rule_is_named_in_one_error() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(default_timeout_s=900, max_timeout_s=600, retry_backoff_s=90)  # type: ignore[arg-type]
    text = str(caught.value)
    assert "default_timeout_s must not exceed max_timeout_s" in text
    assert "retry_backoff_s must not exceed retry_backoff_max_s" in text
