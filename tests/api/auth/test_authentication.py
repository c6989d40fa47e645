"""Every `/v1` request needs a valid key when authentication is on: missing, malformed, unknown,
revoked and expired keys are 401 with `WWW-Authenticate`; health stays open; off, everyone is the
default tenant. Real HTTP against the running API, PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from shared.db.models import utcnow
from shared.db.session import session_scope
from shared.db.tenant_models import ApiKey
from shared.tenancy.keys import hash_key
from tests.api.conftest import MakeClient, Serve
from tests.utils.tenancy import auth_headers, make_key

pytestmark = pytest.mark.timeout(120)


def _revoke(database_url: str, key: str) -> None:
    with session_scope(database_url) as session:
        session.execute(update(ApiKey).where(ApiKey.secret_hash == hash_key(key)).values(revoked_at=utcnow()))


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Basic dXNlcjpwYXNz", "Bearer not-a-key", "Bearer tfk_" + "x" * 40],
    ids=["missing", "empty", "basic", "malformed", "unknown"],
)
def test_a_request_without_a_valid_key_is_401(make_client: MakeClient, authorization: str | None) -> None:
    api = make_client(auth_enabled="true")
    headers = {"Authorization": authorization} if authorization is not None else {}
    for method, path in [
        ("GET", "/v1/jobs"),
        ("GET", "/v1/jobs/01J0000000000000000000000"),
        ("GET", "/v1/models"),
    ]:
        response = api.request(method, path, headers=headers)
        assert response.status_code == 401, (path, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
    created = api.post("/v1/jobs", json={"task": "sentiment", "input": {"text": "hi"}}, headers=headers)
    assert created.status_code == 401
    assert api.get("/v1/jobs", params={"limit": 1}).status_code == 401


def test_a_valid_key_passes_and_health_stays_open(serve: Serve, database_url: str) -> None:
    live = serve(auth_enabled="true")
    key = make_key(database_url, tenant="acme")
    with httpx.Client(base_url=live.url, timeout=30) as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/v1/jobs").status_code == 401
        answer = http.get("/v1/jobs", headers=auth_headers(key))
        assert answer.status_code == 200, answer.text
        openai = http.get("/v1/models", headers=auth_headers(key))
        assert openai.status_code == 200
        denied = http.get("/v1/models")
        assert denied.status_code == 401
        assert denied.json()["error"]["code"] == "invalid_api_key"  # OpenAI's shape and code
        assert denied.headers["www-authenticate"].startswith("Bearer")


def test_revoked_and_expired_keys_are_401(make_client: MakeClient, database_url: str) -> None:
    api = make_client(auth_enabled="true", auth_cache_ttl_s="0")
    revoked = make_key(database_url)
    assert api.get("/v1/jobs", headers=auth_headers(revoked)).status_code == 200
    _revoke(database_url, revoked)
    assert api.get("/v1/jobs", headers=auth_headers(revoked)).status_code == 401
    expired = make_key(database_url, expires_at=utcnow() - timedelta(seconds=1))
    assert api.get("/v1/jobs", headers=auth_headers(expired)).status_code == 401


def test_with_authentication_off_no_key_is_needed(make_client: MakeClient) -> None:
    api = make_client(auth_enabled="false")
    assert api.get("/v1/jobs").status_code == 200
