"""`textfleet keys create|list|revoke` against the database, checked over real HTTP against the running
API (`textfleet api`, enforcing keys) on PostgreSQL and SQLite: a created key works, is listed by prefix
only, is refused (401 with WWW-Authenticate) once revoked or expired, and its last use is recorded."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete
from typer.testing import CliRunner, Result

from shared.db import session_scope
from shared.db.tenant_models import ApiKey
from shared.settings import get_settings
from shared.tenancy.keys import hash_key
from tests.utils.live_api import LiveApi, live_api
from textfleet.cli import app as cli

pytestmark = pytest.mark.timeout(180)

runner = CliRunner()
Serve = Callable[..., LiveApi]


def keys(*args: str) -> Result:
    return runner.invoke(cli, ["keys", *args])


@pytest.fixture
def db(settings_env: None, database_url: str) -> str:
    """The session's database, without keys; `textfleet keys` reads it from TEXTFLEET_DATABASE_URL."""
    with session_scope(database_url) as session:
        session.execute(delete(ApiKey))
    get_settings.cache_clear()
    return database_url


@pytest.fixture
def serve(db: str, tmp_path: Path) -> Iterator[Serve]:
    """`textfleet api` for real, enforcing keys, with extra settings."""
    with ExitStack() as stack:

        def start(**env: str) -> LiveApi:
            return stack.enter_context(live_api(tmp_path / "api.log", auth_enabled="true", **env))

        yield start


def listed(tenant: str | None = None) -> list[dict[str, Any]]:
    result = keys("list", "--json", *(["--tenant", tenant] if tenant else []))
    assert result.exit_code == 0, result.output
    items: list[dict[str, Any]] = json.loads(result.stdout)
    return items


def create(*args: str) -> str:
    result = keys("create", *args)
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert secret.startswith("tfk_") and "\n" not in secret, "stdout holds the secret alone"
    assert "shown this once" in result.stderr
    return secret


def refused_within(url: str, secret: str, seconds: float) -> httpx.Response:
    """Poll GET /v1/jobs with `secret` until it answers 401; fails after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        response = httpx.get(f"{url}/v1/jobs", headers={"Authorization": f"Bearer {secret}"}, timeout=10)
        if response.status_code == 401:
            return response
        assert response.status_code == 200, response.text
        assert time.monotonic() < deadline, f"still accepted after {seconds}s"
        time.sleep(0.2)


def test_create_list_revoke_round_trip_over_http(serve: Serve) -> None:
    api = serve(auth_cache_ttl_s="2")
    secret = create("--tenant", "acme", "--scopes", "jobs:read,jobs:write", "--name", "ci")
    other = create("--tenant", "globex", "--scopes", "admin", "--expires", "30d")
    bearer = {"Authorization": f"Bearer {secret}"}

    assert httpx.get(f"{api.url}/v1/jobs", headers=bearer, timeout=10).status_code == 200
    # The CLI's HTTP commands send TEXTFLEET_API_KEY: a missing job, not a missing key.
    missing = "01JE0000000000000000000000"
    with_key = runner.invoke(cli, ["get", missing, "--url", api.url], env={"TEXTFLEET_API_KEY": secret})
    assert with_key.exit_code == 1 and "job_not_found" in with_key.stderr, with_key.output
    without = runner.invoke(cli, ["get", missing, "--url", api.url], env={"TEXTFLEET_API_KEY": ""})
    assert without.exit_code == 1 and "invalid_api_key" in without.stderr, without.output

    # Listed by prefix; the secret and its hash appear nowhere, not in the table either.
    [info] = listed("acme")
    assert info["prefix"] == secret[:12]
    assert (info["tenant"], info["name"], info["status"]) == ("acme", "ci", "active")
    assert info["scopes"] == ["jobs:read", "jobs:write"]
    assert info["last_used_at"] is not None, "the request above was recorded"
    assert [i["tenant"] for i in listed()] == ["acme", "globex"]
    table = keys("list").stdout
    assert secret[:12] in table and other[:12] in table
    for text in (json.dumps(listed()), table):
        assert secret not in text and hash_key(secret) not in text and hash_key(other) not in text
    assert secret not in api.log() and hash_key(secret) not in api.log(), "the secret is never logged"

    # Revoked by prefix: refused within the cache TTL (2 s) plus a margin, with WWW-Authenticate.
    result = keys("revoke", secret[:12])
    assert result.exit_code == 0, result.output
    assert f"revoked {info['id']}" in result.stderr
    refused = refused_within(api.url, secret, 2 + 3)
    assert refused.headers["www-authenticate"].lower().startswith("bearer")
    assert refused.json()["error"]["code"] == "invalid_api_key"
    assert [i["status"] for i in listed("acme")] == ["revoked"]
    # Revoking again says so and changes nothing; the other tenant's key still works.
    again = keys("revoke", info["id"])
    assert again.exit_code == 0 and "already revoked" in again.stderr
    other_bearer = {"Authorization": f"Bearer {other}"}
    assert httpx.get(f"{api.url}/v1/jobs", headers=other_bearer, timeout=10).status_code == 200


def test_an_expired_key_is_refused_even_while_cached(serve: Serve) -> None:
    api = serve(auth_cache_ttl_s="300")  # a long cache must not outlive the key
    secret = create("--tenant", "acme", "--expires", "3s")
    bearer = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(f"{api.url}/v1/jobs", headers=bearer, timeout=10).status_code == 200
    refused = refused_within(api.url, secret, 3 + 3)
    assert refused.headers["www-authenticate"].lower().startswith("bearer")
    assert [i["status"] for i in listed("acme")] == ["expired"]


def test_last_use_is_written_at_most_once_a_minute(serve: Serve) -> None:
    api = serve(auth_cache_ttl_s="0")
    secret = create("--tenant", "acme")
    bearer = {"Authorization": f"Bearer {secret}"}
    assert listed("acme")[0]["last_used_at"] is None
    assert httpx.get(f"{api.url}/v1/jobs", headers=bearer, timeout=10).status_code == 200
    first = listed("acme")[0]["last_used_at"]
    assert first is not None
    time.sleep(1.1)
    assert httpx.get(f"{api.url}/v1/jobs", headers=bearer, timeout=10).status_code == 200
    assert listed("acme")[0]["last_used_at"] == first


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scopes", "jobs:delete"], "unknown scope jobs:delete"),
        (["--scopes", ""], "at least one scope"),
        (["--expires", "soon"], "not a duration"),
        (["--expires", "2020-01-01"], "not in the future"),
        (["--tenant", "no spaces"], "letters, digits"),
    ],
)
def test_create_refuses_bad_options_and_writes_nothing(db: str, args: list[str], message: str) -> None:
    result = keys("create", "--tenant", "acme", *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())
    assert listed() == []


def test_revoking_an_unknown_key_fails_clearly(db: str) -> None:
    result = keys("revoke", "tfk_unknown1")
    assert result.exit_code == 1
    assert "no key with id or prefix 'tfk_unknown1'" in result.stderr
