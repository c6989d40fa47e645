"""Errors of the OpenAI endpoints in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.

The app's own exception handlers (`api.errors`) still decide each error's status and wording; routes of
this package (`OpenAIRoute`) only re-shape what they answer, so the `openai` client raises the class it
would raise against OpenAI:

| textfleet answer                         | status | type                  | code                   |
|------------------------------------------|--------|-----------------------|------------------------|
| 422 validation_error / invalid_request   | 400    | invalid_request_error | the textfleet code     |
| 400 invalid_json                         | 400    | invalid_request_error | invalid_json           |
| code `model_not_found` / `unknown_model` | 404    | invalid_request_error | model_not_found        |
| a job failed with `content_flagged` or `invalid_params` | 400 | invalid_request_error | the job's code |
| a job failed with `timeout`              | 504    | server_error          | timeout                |
| a job `expired` in the queue             | 503    | server_error          | expired                |
| other 4xx / 5xx                          | same   | invalid_request_error / server_error (5xx) | its code |

`param` is the offending field's dotted path in the request body (`messages.0.content`), or null.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError

from shared.errors import TextfleetError
from shared.schemas import JobOut

__all__ = ["JobFailedError", "OpenAIRoute", "error_body", "failure_body", "job_error", "validation_error"]

#: Status of a textfleet error code on these endpoints, where it differs from the app's own.
_STATUS_BY_CODE = {
    "model_not_found": 404,
    "unknown_model": 404,
    "content_flagged": 400,
    "invalid_params": 400,
    "timeout": 504,
    "expired": 503,
    "canceled": 409,
}
_CODE_RENAMES = {"unknown_model": "model_not_found"}
#: Headers of the app's error response that the reshaped one keeps.
_KEPT_HEADERS = frozenset({"retry-after", "www-authenticate"})


class JobFailedError(TextfleetError):
    """The job that ran a request did not succeed (its own error code and message)."""


def job_error(job: JobOut) -> JobFailedError:
    """Why a terminal, unsuccessful job fails the request that started it."""
    if job.error is not None:
        return JobFailedError(job.error.message, code=job.error.code)
    if not job.status.is_terminal:
        return JobFailedError("the job did not finish in time and was canceled", code="timeout")
    if job.status.value == "expired":
        return JobFailedError("no worker started this request in time (the fleet is busy)", code="expired")
    return JobFailedError(f"the job was {job.status.value} before it finished", code=job.status.value)


def validation_error(exc: ValidationError, rename: Callable[[tuple[Any, ...]], tuple[Any, ...]]) -> Exception:
    """A ValidationError raised while building a job, as the request error it is (locations renamed
    from the job's fields to the request's parameters by `rename`)."""
    errors = [{**error, "loc": ("body", *rename(tuple(error["loc"])))} for error in exc.errors()]
    return RequestValidationError(errors)


def error_body(status: int, message: str, code: str | None, param: str | None) -> dict[str, Any]:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def failure_body(exc: TextfleetError) -> dict[str, Any]:
    """The OpenAI error body of a failed job (sent inside a stream, whose status is already 200)."""
    status = _STATUS_BY_CODE.get(exc.code, 500)
    return error_body(status, exc.message, _CODE_RENAMES.get(exc.code, exc.code), None)


def _reshape(response: Response) -> Response:
    """The app's error response, in OpenAI's shape."""
    try:
        error = json.loads(bytes(response.body))["error"]
    except (ValueError, KeyError, TypeError):
        return response
    code = error.get("code")
    status = _STATUS_BY_CODE.get(code, response.status_code)
    if status == 422:
        status = 400
    headers = {k: v for k, v in response.headers.items() if k.lower() in _KEPT_HEADERS}
    body = error_body(status, error.get("message", ""), _CODE_RENAMES.get(code, code), error.get("field"))
    return JSONResponse(body, status, headers=headers or None)


async def _handled(request: Request, exc: Exception) -> Response:
    """What the app's own exception handler answers for `exc` (re-raised if it has none)."""
    handlers = request.app.exception_handlers
    for cls in type(exc).__mro__:
        handler = handlers.get(cls)
        if handler is not None:
            response: Response = await handler(request, exc)
            return response
    raise exc


class OpenAIRoute(APIRoute):
    """A route whose errors are answered in OpenAI's shape (validation errors included)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handle(request)
            except Exception as exc:
                return _reshape(await _handled(request, exc))

        return run
