"""Who may read the operational endpoints: `/metrics` and the API docs (`/docs`, `/redoc`,
`/openapi.json`). Health probes (`/healthz`, `/readyz`) are never guarded.

Each is `open` or `key`-protected by setting (`TEXTFLEET_AUTH_METRICS`, `TEXTFLEET_AUTH_DOCS`); with
authentication off (`TEXTFLEET_AUTH_ENABLED=false`) both are open. Protected docs take any valid key
(they describe what any key may call). Protected metrics take an admin key, or the scraper's own
bearer token `TEXTFLEET_AUTH_METRICS_TOKEN` (compared in constant time), so that Prometheus needs no
key that could also read jobs: the metrics' labels name tenants.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials

from api.auth.dependencies import bearer
from api.auth.service import Authenticator
from shared.errors import PermissionDeniedError
from shared.settings import Settings
from shared.tenancy.principal import Scope

__all__ = ["docs_access", "metrics_access"]

Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _authenticator(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.auth
    return authenticator


async def metrics_access(request: Request, credentials: Credentials) -> None:
    """Let a `/metrics` scrape through, or raise AuthenticationError (401) / PermissionDeniedError (403)."""
    auth = _settings(request).auth
    if not auth.auth_enabled or auth.auth_metrics == "open":
        return
    token = credentials.credentials if credentials is not None else None
    if token is not None and auth.auth_metrics_token is not None:
        expected = auth.auth_metrics_token.get_secret_value().encode()
        if hmac.compare_digest(token.encode(), expected):
            return
    principal = await _authenticator(request).principal(token)
    if not principal.allows(Scope.ADMIN):
        raise PermissionDeniedError("/metrics needs an admin key or the metrics token")


async def docs_access(request: Request, credentials: Credentials) -> None:
    """Let a request for the docs or the OpenAPI schema through, or raise AuthenticationError (401)."""
    auth = _settings(request).auth
    if not auth.auth_enabled or auth.auth_docs == "open":
        return
    await _authenticator(request).principal(credentials.credentials if credentials is not None else None)
