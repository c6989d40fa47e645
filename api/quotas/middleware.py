"""`QuotasMiddleware`: jobs created while the app handles a request are admitted under the app's own
quotas (`shared.quotas.admission.quotas_in_force`), like `api.limits` does for request limits."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from shared.quotas.admission import Quotas, quotas_in_force

__all__ = ["QuotasMiddleware"]


class QuotasMiddleware:
    """Pure ASGI (no extra task per request): `quotas` are in force while the app handles a request."""

    def __init__(self, app: ASGIApp, quotas: Quotas) -> None:
        self.app = app
        self.quotas = quotas

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with quotas_in_force(self.quotas):
            await self.app(scope, receive, send)
