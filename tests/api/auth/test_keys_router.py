"""`/v1/keys` over real HTTP against the running API (enforcing keys), on PostgreSQL and SQLite: admin
only (403 for other scopes, 401 with WWW-Authenticate without a valid key); a created key's secret is in
the response once and works; listing never shows a secret; revocation is immediate on this process."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import delete

from shared.db import session_scope
from shared.db.tenant_models import ApiKey
from shared.tenancy.keys import hash_key
from shared.tenancy.principal import Scope
from tests.api.conftest import Serve
from tests.utils.tenancy import auth_headers, make_key

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def no_keys(database_url: str) -> None:
    with session_scope(database_url) as session:
        session.execute(delete(ApiKey))


def test_key_administration_needs_the_admin_scope(serve: Serve, database_url: str, no_keys: None) -> None:
    api = serve(auth_enabled="true")
    writer = make_key(database_url, "acme", scopes=(Scope.JOBS_READ, Scope.JOBS_WRITE))
    with httpx.Client(base_url=api.url, timeout=10) as http:
        for method, path in (("GET", "/v1/keys"), ("POST", "/v1/keys"), ("DELETE", "/v1/keys/key_x")):
            missing = http.request(method, path, json={})
            assert missing.status_code == 401, (method, path, missing.text)
            assert missing.headers["www-authenticate"].lower().startswith("bearer")
            wrong = http.request(method, path, json={}, headers=auth_headers("tfk_" + "x" * 40))
            assert wrong.status_code == 401, (method, path, wrong.text)
            assert wrong.headers["www-authenticate"].lower().startswith("bearer")
            denied = http.request(method, path, json={}, headers=auth_headers(writer))
            assert denied.status_code == 403, (method, path, denied.text)
            assert "www-authenticate" not in denied.headers


def test_an_admin_creates_lists_and_revokes_keys(serve: Serve, database_url: str, no_keys: None) -> None:
    api = serve(auth_enabled="true", auth_cache_ttl_s="300")
    admin = auth_headers(make_key(database_url, "ops", scopes=(Scope.ADMIN,)))
    with httpx.Client(base_url=api.url, timeout=10) as http:
        created = http.post(
            "/v1/keys",
            json={
                "tenant": "acme",
                "scopes": ["jobs:read"],
                "name": "reader",
                "expires_at": "2099-01-01T00:00:00Z",
            },
            headers=admin,
        )
        assert created.status_code == 201, created.text
        body = created.json()
        secret = body["key"]
        assert secret.startswith("tfk_") and body["prefix"] == secret[:12]
        assert (body["tenant"], body["scopes"], body["status"]) == ("acme", ["jobs:read"], "active")
        reader = auth_headers(secret)
        assert http.get("/v1/jobs", headers=reader).status_code == 200
        assert http.get("/v1/keys", headers=reader).status_code == 403

        listing = http.get("/v1/keys", params={"tenant": "acme"}, headers=admin)
        assert listing.status_code == 200
        assert [item["id"] for item in listing.json()["items"]] == [body["id"]]
        everything = http.get("/v1/keys", headers=admin).text
        assert secret not in everything and hash_key(secret) not in everything
        assert '"key"' not in everything

        revoked = http.delete(f"/v1/keys/{body['prefix']}", headers=admin)
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["status"] == "revoked"
        # This process forgets the key at once, whatever the cache TTL (300 s here).
        refused = http.get("/v1/jobs", headers=reader)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].lower().startswith("bearer")
        assert (
            http.delete(f"/v1/keys/{body['id']}", headers=admin).json()["revoked_at"]
            == (revoked.json()["revoked_at"])
        )
        assert http.delete("/v1/keys/key_unknown", headers=admin).status_code == 404


BAD_BODIES: list[tuple[dict[str, object], str]] = [
    ({"tenant": "acme", "scopes": []}, "scopes"),
    ({"tenant": "acme", "scopes": ["jobs:delete"]}, "scopes.0"),
    ({"tenant": "bad tenant", "scopes": ["admin"]}, "tenant"),
    ({"tenant": "acme", "scopes": ["admin"], "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
    ({"tenant": "acme", "scopes": ["admin"], "expires_at": "2099-01-01T00:00:00"}, "expires_at"),
    ({"tenant": "acme", "scopes": ["admin"], "secret": "mine"}, "secret"),
]


def test_bad_key_requests_are_422_and_create_nothing(serve: Serve, database_url: str, no_keys: None) -> None:
    api = serve(auth_enabled="true")
    admin = auth_headers(make_key(database_url, "ops", scopes=(Scope.ADMIN,)))
    with httpx.Client(base_url=api.url, timeout=10, headers=admin) as http:
        for body, field in BAD_BODIES:
            response = http.post("/v1/keys", json=body)
            assert response.status_code == 422, (body, response.text)
            assert response.json()["error"]["field"] == field, body
        assert [item["tenant"] for item in http.get("/v1/keys").json()["items"]] == ["ops"]
