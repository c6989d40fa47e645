"""Dependencies that authenticate a request and check its scope.

Every `/v1` router is included with `authenticate` (`api.app`), so a request without a valid key is a
401 before any route runs; a route then asks for the scope it needs through `api.deps` (`ReaderDep`,
`WriterDep`, `AdminDep`), which answers 403 when the key lacks it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth.service import Authenticator
from shared.errors import PermissionDeniedError
from shared.tenancy.principal import Principal, Scope

__all__ = ["authenticate", "bearer", "require"]

#: The OpenAPI security scheme (`/docs` offers "Authorize"); errors are ours, not FastAPI's.
bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer tfk_...`.")


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Principal:
    """The request's principal (401 when its key is missing or not valid)."""
    authenticator: Authenticator = request.app.state.auth
    token = credentials.credentials if credentials is not None else None
    principal = await authenticator.principal(token)
    request.state.principal = principal
    return principal


def require(scope: Scope) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that passes the principal on when it holds `scope` (403 otherwise)."""

    async def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.allows(scope):
            raise PermissionDeniedError(f"this API key lacks the `{scope.value}` scope")
        return principal

    dependency.__name__ = f"require_{scope.name.lower()}"
    return dependency
