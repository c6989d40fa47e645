"""Secrets come from the environment or from files (`TEXTFLEET_<FIELD>_FILE`, `TEXTFLEET_SECRETS_DIR`),
and `environment=production` refuses to start with an empty, default or placeholder secret, without
ever repeating a value in the error."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsError

from shared.settings import Settings

STRONG = "whsec_" + secrets.token_urlsafe(24)
STRONG_PASSWORD = secrets.token_urlsafe(18)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WEBHOOK_SECRET", "DATABASE_URL", "REDIS_URL", "ENVIRONMENT", "SECRETS_DIR"):
        monkeypatch.delenv(f"TEXTFLEET_{name}", raising=False)
        monkeypatch.delenv(f"TEXTFLEET_{name}_FILE", raising=False)
    monkeypatch.delenv("TEXTFLEET_FILES_S3_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("TEXTFLEET_FILES_S3_SECRET_ACCESS_KEY", raising=False)


def _secret_file(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content)
    path.chmod(0o600)
    return path


def test_a_secret_is_read_from_the_file_its_file_variable_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"postgresql+psycopg://textfleet:{STRONG_PASSWORD}@db:5432/textfleet"
    monkeypatch.setenv("TEXTFLEET_WEBHOOK_SECRET_FILE", str(_secret_file(tmp_path, "wh", STRONG + "\n")))
    monkeypatch.setenv("TEXTFLEET_DATABASE_URL_FILE", str(_secret_file(tmp_path, "db", url)))
    monkeypatch.setenv("TEXTFLEET_FILES_S3_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv(
        "TEXTFLEET_FILES_S3_SECRET_ACCESS_KEY_FILE", str(_secret_file(tmp_path, "s3", "s3cr3t"))
    )
    settings = Settings()
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == STRONG  # the trailing newline dropped
    assert settings.database_url == url
    assert settings.files.files_s3_secret_access_key is not None  # a settings group reads files too
    assert settings.files.files_s3_secret_access_key.get_secret_value() == "s3cr3t"


def test_a_variable_and_its_file_variable_together_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEXTFLEET_WEBHOOK_SECRET", STRONG)
    monkeypatch.setenv("TEXTFLEET_WEBHOOK_SECRET_FILE", str(_secret_file(tmp_path, "wh", STRONG)))
    with pytest.raises(SettingsError, match="TEXTFLEET_WEBHOOK_SECRET or TEXTFLEET_WEBHOOK_SECRET_FILE"):
        Settings()


def test_an_unreadable_secret_file_is_named_without_its_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "absent"
    monkeypatch.setenv("TEXTFLEET_WEBHOOK_SECRET_FILE", str(missing))
    with pytest.raises(SettingsError, match=r"TEXTFLEET_WEBHOOK_SECRET_FILE: cannot read .*absent"):
        Settings()
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe" + STRONG.encode())
    monkeypatch.setenv("TEXTFLEET_WEBHOOK_SECRET_FILE", str(binary))
    with pytest.raises(SettingsError, match="UnicodeDecodeError") as caught:
        Settings()
    assert STRONG not in str(caught.value)


def test_a_secrets_directory_fills_what_the_environment_leaves_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _secret_file(tmp_path, "textfleet_webhook_secret", STRONG)
    monkeypatch.setenv("TEXTFLEET_SECRETS_DIR", str(tmp_path))
    settings = Settings()
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == STRONG
    monkeypatch.setenv("TEXTFLEET_WEBHOOK_SECRET", "whsec_" + "B" * 32)  # the environment wins
    assert Settings().webhook_secret.get_secret_value() == "whsec_" + "B" * 32  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"webhook_secret": ""}, "webhook_secret: it is empty"),
        ({"webhook_secret": "   "}, "webhook_secret: it is empty"),
        ({"webhook_secret": "whsec_..."}, "webhook_secret: it is a well-known default or a placeholder"),
        ({"webhook_secret": "changeme"}, "webhook_secret: it is a well-known default"),
        (
            {"database_url": "postgresql+psycopg://postgres:postgres@db/textfleet"},
            "the password in database_url",
        ),
        ({"database_url": "postgresql+psycopg://textfleet:@db/textfleet"}, "the password in database_url"),
        ({"database_url": "postgresql+psycopg://u:<password>@db/textfleet"}, "the password in database_url"),
        ({"redis_url": "redis://:redis@cache:6379/0"}, "the password in redis_url"),
    ],
)
def test_production_refuses_an_empty_or_default_secret(overrides: dict[str, str], named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(environment="production", **overrides)  # type: ignore[arg-type]
    message = str(caught.value)
    assert f"environment=production refuses {named}" in message
    assert "input_value" not in message  # the values given are never repeated


def test_production_refuses_a_default_s3_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTFLEET_FILES_S3_ACCESS_KEY_ID", "minioadmin")
    monkeypatch.setenv("TEXTFLEET_FILES_S3_SECRET_ACCESS_KEY", "minioadmin")
    with pytest.raises(ValidationError, match="refuses files_s3_secret_access_key"):
        Settings(environment="production")
    assert Settings(environment="development").files.files_s3_secret_access_key is not None


def test_production_starts_with_real_secrets_or_none() -> None:
    Settings(environment="production")  # no secret set: webhooks off, the driver's own credentials
    settings = Settings(
        environment="production",
        webhook_secret=STRONG,  # type: ignore[arg-type]
        database_url=f"postgresql+psycopg://textfleet:{STRONG_PASSWORD}@db:5432/textfleet",
        redis_url=f"redis://:{STRONG_PASSWORD}@cache:6379/0",
    )
    assert settings.environment == "production"


def test_development_allows_what_production_refuses() -> None:
    settings = Settings(database_url="postgresql+psycopg://postgres:postgres@127.0.0.1/test")
    assert settings.environment == "development"
