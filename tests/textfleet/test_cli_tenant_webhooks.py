"""`textfleet tenants webhook-secret`: show, generate, set from stdin, clear (the database directly)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from shared.db import session_scope
from shared.settings import get_settings
from shared.webhooks.tenant_secrets import new_webhook_secret, tenant_webhook_secret
from textfleet.cli import app as cli


@pytest.fixture
def runner(settings_env: None) -> CliRunner:
    get_settings.cache_clear()
    return CliRunner()


def _secret(database_url: str, tenant: str) -> str | None:
    with session_scope(database_url) as session:
        return tenant_webhook_secret(session, tenant)


def test_generate_show_set_and_clear(runner: CliRunner, database_url: str) -> None:
    command = ["tenants", "webhook-secret", "cli-tenant"]
    shown = runner.invoke(cli, command)
    assert shown.exit_code == 0, shown.output
    assert "signs with the global secret" in shown.output

    generated = runner.invoke(cli, [*command, "--generate"])
    assert generated.exit_code == 0, generated.output
    secret = _secret(database_url, "cli-tenant")
    assert secret is not None and secret in generated.output  # printed once, here

    shown = runner.invoke(cli, command)
    assert "its own secret" in shown.output and secret not in shown.output
    assert secret in runner.invoke(cli, [*command, "--show"]).output

    given = new_webhook_secret()
    piped = runner.invoke(cli, [*command, "--stdin"], input=given + "\n")
    assert piped.exit_code == 0 and given not in piped.output
    assert _secret(database_url, "cli-tenant") == given

    bad = runner.invoke(cli, [*command, "--stdin"], input="not-a-secret")
    assert bad.exit_code == 1 and "whsec_" in bad.output
    assert _secret(database_url, "cli-tenant") == given

    cleared = runner.invoke(cli, [*command, "--clear"])
    assert cleared.exit_code == 0 and "global secret" in cleared.output
    assert _secret(database_url, "cli-tenant") is None
    assert runner.invoke(cli, [*command, "--clear", "--generate"]).exit_code == 2
    bad_name = runner.invoke(cli, ["tenants", "webhook-secret", "no spaces!", "--generate"])
    assert bad_name.exit_code == 1 and "a tenant name is" in bad_name.output
