"""`/metrics` and the docs (`/docs`, `/redoc`, `/openapi.json`) open or key-protected by setting, over
real HTTP against the running API; health probes open whatever the settings."""

from __future__ import annotations

import httpx
import pytest

from shared.tenancy.principal import Scope
from tests.api.conftest import Serve
from tests.utils.tenancy import auth_headers, make_key

pytestmark = pytest.mark.timeout(180)

DOCS = ("/docs", "/redoc", "/openapi.json")
HEALTH = ("/healthz", "/readyz")
METRICS_TOKEN = "scraper-token-0123456789abcdef"


def _status(http: httpx.Client, path: str, headers: dict[str, str] | None = None) -> int:
    return http.get(path, headers=headers).status_code


def test_defaults_protect_metrics_and_leave_docs_and_health_open(serve: Serve, database_url: str) -> None:
    api = serve(auth_enabled="true", auth_metrics_token=METRICS_TOKEN)
    reader = auth_headers(make_key(database_url, "acme", scopes=(Scope.JOBS_READ,)))
    admin = auth_headers(make_key(database_url, "ops", scopes=(Scope.ADMIN,)))
    with httpx.Client(base_url=api.url, timeout=10) as http:
        missing = http.get("/metrics")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].lower().startswith("bearer")
        assert _status(http, "/metrics", auth_headers("not-the-token")) == 401
        assert _status(http, "/metrics", reader) == 403, "a tenant's key cannot read every tenant's metrics"
        scraped = http.get("/metrics", headers=admin)
        assert scraped.status_code == 200 and "textfleet_http_requests_total" in scraped.text
        assert _status(http, "/metrics", auth_headers(METRICS_TOKEN)) == 200
        assert _status(http, "/v1/jobs", auth_headers(METRICS_TOKEN)) == 401, "the metrics token is no key"
        for path in (*DOCS, *HEALTH):
            assert _status(http, path) == 200, path
        assert "/v1/jobs" in http.get("/openapi.json").json()["paths"]


def test_metrics_open_and_docs_protected_when_configured(serve: Serve, database_url: str) -> None:
    api = serve(auth_enabled="true", auth_metrics="open", auth_docs="key")
    reader = auth_headers(make_key(database_url, "acme", scopes=(Scope.JOBS_READ,)))
    with httpx.Client(base_url=api.url, timeout=10) as http:
        assert _status(http, "/metrics") == 200
        for path in DOCS:
            refused = http.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"].lower().startswith("bearer")
            assert _status(http, path, auth_headers("tfk_" + "y" * 40)) == 401, path
            assert _status(http, path, reader) == 200, path
        for path in HEALTH:
            assert _status(http, path) == 200, path


def test_everything_is_open_with_authentication_off(serve: Serve) -> None:
    api = serve(auth_enabled="false", auth_metrics="key", auth_docs="key")
    with httpx.Client(base_url=api.url, timeout=10) as http:
        for path in ("/metrics", *DOCS, *HEALTH, "/v1/jobs"):
            assert _status(http, path) == 200, path
