"""`textfleet tenants limits set|show|clear` on a real database and Redis."""

from __future__ import annotations

import json
import secrets

import pytest
from typer.testing import CliRunner

from shared.db import session_scope
from shared.quotas.tenant_limits import read_overrides
from textfleet.cli import app

runner = CliRunner()


def _run(*args: str) -> dict[str, object]:
    result = runner.invoke(app, ["tenants", "limits", *args, "--json"])
    assert result.exit_code == 0, result.output
    out: dict[str, object] = json.loads(result.output.strip().splitlines()[-1])
    return out


def test_set_show_and_clear_a_tenants_limits(
    settings_env: None, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEXTFLEET_QUOTA_MAX_QUEUED_JOBS", "50")
    tenant = f"cli-{secrets.token_hex(3)}"
    shown = _run("show", tenant)
    assert shown["limits"] == {
        "requests_per_second": None,
        "max_queued_jobs": 50,
        "tokens_per_minute": None,
        "tokens_per_day": None,
    }
    assert shown["overridden"] == []
    changed = _run("set", tenant, "tokens_per_day=100000", "requests-per-second=20", "max_queued_jobs=none")
    assert changed["limits"] == {
        "requests_per_second": 20,
        "max_queued_jobs": None,
        "tokens_per_minute": None,
        "tokens_per_day": 100000,
    }
    assert changed["recorded_tokens_today"] == 0
    assert changed["live"] == {"open_jobs": 0, "tokens_this_minute": 0, "tokens_today": 0}
    with session_scope(database_url) as session:
        assert read_overrides(session, tenant) == {
            "tokens_per_day": 100000,
            "requests_per_second": 20,
            "max_queued_jobs": None,
        }
    partly = _run("clear", tenant, "max_queued_jobs")
    assert partly["limits"]["max_queued_jobs"] == 50  # type: ignore[index]
    assert partly["overridden"] == ["requests_per_second", "tokens_per_day"]
    assert _run("clear", tenant)["overridden"] == []


@pytest.mark.parametrize(
    ("assignment", "problem"),
    [
        ("tokens_per_week=5", "tokens_per_week"),
        ("tokens_per_day=-5", "positive"),
        ("tokens_per_day=lots", "integer"),
    ],
)
def test_bad_limits_are_refused_naming_the_problem(settings_env: None, assignment: str, problem: str) -> None:
    result = runner.invoke(app, ["tenants", "limits", "set", "someone", assignment])
    assert result.exit_code == 2
    assert problem in result.output
