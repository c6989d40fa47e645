"""`LimitsMiddleware`: each request is validated against the limits of its app's own settings, and no
request body larger than they allow is read.

The request models read `shared.limits.current_limits()`; this middleware puts the app's limits in
force for the whole request (body validation, the route, its threadpool work), so
`create_app(settings)` enforces `settings`' limits even where the process-wide settings differ.

It also caps the request body (`max_body_bytes`; a file upload: `files_max_bytes` plus its multipart
framing). A body whose `Content-Length` is over the cap is refused the first time the route asks for
it, before any of it is read; a chunked one as soon as the bytes received pass the cap. Either way the
route's own error handling answers (`413 payload_too_large`, in the OpenAI shape on those routes), and
a route that never reads its body (a GET) is not affected. Starlette and uvicorn set no such cap.

`check_url_params` (an app-wide dependency) holds path and query parameters to the rule bodies are
held to (`shared.validation`): a NUL character can be neither stored nor looked up in PostgreSQL, so
`?after=%00` or `/v1/files/%00` is a 422 (400 on OpenAI routes) naming the parameter, not a 500.
"""

from __future__ import annotations

from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import InvalidInputError
from shared.limits import Limits, limits_in_force
from shared.validation import string_problem

__all__ = ["UPLOAD_PATHS", "LimitsMiddleware", "body_limit", "check_url_params"]

#: Routes whose body is a file upload (multipart), capped by the file size instead of `max_body_bytes`.
UPLOAD_PATHS = frozenset({"/v1/files"})


def body_limit(limits: Limits, path: str) -> tuple[int, str]:
    """The largest body a request to `path` may send, and the setting that sets it."""
    if path.rstrip("/") in UPLOAD_PATHS:
        return limits.max_upload_bytes, "files_max_bytes"
    return limits.max_body_bytes, "max_body_bytes"


def _too_large(limit: int, setting: str) -> HTTPException:
    return HTTPException(413, f"the request body is larger than {limit} bytes (the {setting} setting)")


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # uvicorn refuses a malformed Content-Length before we see it
    return None


class LimitsMiddleware:
    """Pure ASGI (no extra task per request): `limits` are in force while the app handles a request,
    and its body is capped."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with limits_in_force(self.limits):
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            limit, setting = body_limit(self.limits, scope["path"])
            declared = _declared_length(scope)
            received = 0

            async def capped_receive() -> Message:
                nonlocal received
                if declared is not None and declared > limit:
                    raise _too_large(limit, setting)
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise _too_large(limit, setting)
                return message

            await self.app(scope, capped_receive, send)


async def check_url_params(request: Request) -> None:
    """422 naming the first path or query parameter that holds a NUL character (or a lone surrogate)."""
    values = [*request.path_params.items(), *request.query_params.multi_items()]
    for name, value in values:
        problem = string_problem(value) if isinstance(value, str) else None
        if problem is not None:
            raise InvalidInputError(problem, field=name, code="validation_error")
