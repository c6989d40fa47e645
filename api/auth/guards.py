"""Who may read the operational endpoints: `/metrics` and the API docs (`/docs`, `/redoc`,
`/openapi.json`). Health probes (`/healthz`, `/readyz`) are never guarded.

Each is `open` or `key`-protected by setting (`TEXTFLEET_AUTH_METRICS`, `TEXTFLEET_AUTH_DOCS`); with
authentication off (`TEXTFLEET_AUTH_ENABLED=false`) both are open. Protected docs take any valid key
(they describe what any key may call). Protected metrics take an admin key, or the scraper's own
bearer token `TEXTFLEET_AUTH_METRICS_TOKEN` (compared in constant time), so that Prometheus does not
need a key that could also read every tenant's jobs: metrics carry tenant names and volumes.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from api.auth.dependencies import authenticate, bearer_token
from shared.errors import PermissionDeniedError
from shared.settings import Settings
from shared.tenancy.principal import Scope

__all__ = ["docs_access", "metrics_access"]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def metrics_access(request: Request) -> None:
    """Let a `/metrics` scrape through, or raise AuthenticationError (401) / PermissionDeniedError (403)."""
    auth = _settings(request).auth
    if not auth.auth_enabled or auth.auth_metrics == "open":
        return
    token = bearer_token(request)
    if token is not None and auth.auth_metrics_token is not None:
        expected = auth.auth_metrics_token.get_secret_value().encode()
        if hmac.compare_digest(token.encode(), expected):
            return
    principal = await authenticate(request)
    if not principal.allows(Scope.ADMIN):
        raise PermissionDeniedError("/metrics needs an admin key or the metrics token")


async def docs_access(request: Request) -> None:
    """Let a request for the docs or the OpenAPI schema through, or raise AuthenticationError (401)."""
    auth = _settings(request).auth
    if not auth.auth_enabled or auth.auth_docs == "open":
        return
    await authenticate(request)
