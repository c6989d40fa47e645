"""Settings: env prefix, JSON dict fields, validation and derived values."""

from __future__ import annotations

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
