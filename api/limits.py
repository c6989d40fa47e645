"""`LimitsMiddleware`: each request is validated against the limits of its app's own settings.

The request models read `shared.limits.current_limits()`; this middleware puts the app's limits in
force for the whole request (body validation, the route, its threadpool work), so
`create_app(settings)` enforces `settings`' limits even where the process-wide settings differ.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from shared.limits import Limits, limits_in_force

__all__ = ["LimitsMiddleware"]


class LimitsMiddleware:
    """Pure ASGI (no extra task per request): `limits` are in force while the app handles a request."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with limits_in_force(self.limits):
            await self.app(scope, receive, send)
