"""Exception handlers: the one place where errors become HTTP responses.

Every 4xx/5xx body is `shared.schemas.ErrorResponse`: `{"error": {"code", "message", "field"?, "errors"?}}`.

| raised                                   | status | code                  |
|------------------------------------------|--------|-----------------------|
| RequestValidationError (pydantic)        | 422    | validation_error      |
| ... whose body is not valid JSON         | 400    | invalid_json          |
| InvalidInputError                        | 422    | its own (invalid_request / validation_error) |
| AuthenticationError                      | 401    | invalid_api_key (with `WWW-Authenticate: Bearer`) |
| PermissionDeniedError                    | 403    | insufficient_scope    |
| JobNotFoundError                         | 404    | job_not_found         |
| KeyNotFoundError                         | 404    | key_not_found         |
| ConflictError                            | 409    | conflict              |
| QuotaExceededError (shared.quotas)       | 429    | its own, with `Retry-After` |
| QueueUnavailableError                    | 503    | queue_unavailable     |
| TransientDatabaseError, SQLAlchemy OperationalError | 503 | database_unavailable |
| Starlette HTTPException (unknown route...) | its own | not_found / method_not_allowed / http_error |
| anything else                            | 500    | internal_error        |
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from shared.constants import RETRY_AFTER_S, TaskName
from shared.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    JobNotFoundError,
    KeyNotFoundError,
    PermissionDeniedError,
    QueueUnavailableError,
    QuotaExceededError,
    TextfleetError,
    TransientDatabaseError,
)
from shared.logging import safe_message
from shared.schemas import ErrorBody, ErrorResponse
from shared.validation import KEY, string_problem

__all__ = ["STATUS_BY_ERROR", "error_response", "install_error_handlers", "validation_errors"]

log = structlog.get_logger(__name__)

#: HTTP status of each client- or infrastructure-facing error (the most specific class wins).
STATUS_BY_ERROR: dict[type[TextfleetError], int] = {
    InvalidInputError: 422,
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    JobNotFoundError: 404,
    KeyNotFoundError: 404,
    ConflictError: 409,
    QuotaExceededError: 429,
    QueueUnavailableError: 503,
    TransientDatabaseError: 503,
}

_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})
_TASKS = frozenset(t.value for t in TaskName)
_VALID_TASKS = ", ".join(t.value for t in TaskName)
# Labels pydantic puts in `loc` for the members of a (non-discriminated) union, e.g. `params.stop`.
_UNION_LABEL = re.compile(r"^(?:[a-z]+\[.*\]|str|int|float|bool|none|constrained-(?:str|int|float|list))$")
_MESSAGE_PREFIXES = ("Value error, ", "Assertion failed, ")
#: FastAPI's detail when parsing the body failed other than by a JSON syntax error.
_BODY_UNPARSABLE = "There was an error parsing the body"
_MAX_PART = 128  # longest path part (a client's key) an error repeats
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def error_response(
    status_code: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A JSON response in the ErrorResponse shape (absent `field` / `errors` are left out)."""
    body = ErrorResponse(error=ErrorBody(code=code, message=message, field=field, errors=errors))
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code, headers=headers)


# --- Validation errors -----------------------------------------------------------------------------


def _split_item(loc: Sequence[int | str]) -> tuple[str, list[int | str], str | None]:
    """(`jobs.<i>.` prefix or "", the rest of the path, the request part) of a pydantic `loc`.

    A batch item's path (`body.jobs.<i>...`) is read like a single job's, then prefixed with its index.
    """
    parts = list(loc)
    source = str(parts.pop(0)) if parts and parts[0] in _SOURCES else None
    if source == "body" and len(parts) >= 2 and parts[0] == "jobs" and isinstance(parts[1], int):
        return f"jobs.{parts[1]}.", parts[2:], source
    return "", parts, source


def _field_path(loc: Sequence[int | str]) -> str | None:
    """Dotted path of a pydantic `loc`, without the request part (`body`), the union tag or union labels."""
    prefix, parts, source = _split_item(loc)
    if source == "body" and parts and parts[0] in _TASKS:
        parts.pop(0)  # the discriminator tag pydantic adds for the JobCreate union member
    free_form = bool(parts) and parts[0] == "metadata"  # metadata keys are the client's own
    path = ""
    for part in parts:
        if isinstance(part, str) and not free_form and _UNION_LABEL.match(part):
            continue
        if part == KEY:
            path = f"{path or source or 'body'}{KEY}"
            continue
        text = _printable(str(part))
        path += f".{text}" if path else text
    if path:
        return prefix + path
    if prefix:
        return prefix.rstrip(".")
    return str(source) if source is not None else None


def _printable(part: str) -> str:
    """A path part (a client's own key, e.g. in metadata or an unknown field) safe to put in a JSON
    response and a log line: unprintable characters and lone surrogates escaped, length bounded."""
    if not part.isprintable() or string_problem(part) is not None:
        part = part.encode("unicode_escape", "backslashreplace").decode("ascii")
    return part if len(part) <= _MAX_PART else part[:_MAX_PART] + "..."


def _clean_message(message: str) -> str:
    for prefix in _MESSAGE_PREFIXES:
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def _describe(error: dict[str, Any]) -> dict[str, Any]:
    """One validation problem as `{field, message, type}` (never echoing the input or exceptions)."""
    kind = str(error.get("type", "value_error"))
    field = _field_path(error.get("loc", ()))
    message = _clean_message(str(error.get("msg", "invalid value")))
    prefix = _split_item(error.get("loc", ()))[0]
    if kind == "union_tag_invalid":
        field = f"{prefix}task"
        message = f"unknown task; valid tasks are: {_VALID_TASKS}"  # never echo what was sent
    elif kind == "union_tag_not_found":
        field = f"{prefix}task"
        message = f"field required; valid tasks are: {_VALID_TASKS}"
    elif kind == "model_attributes_type" and field == "body":
        message = "the request body must be a JSON object"
    return {"field": field, "message": message, "type": kind}


def validation_errors(raw: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic's errors as `{field, message, type}` items, duplicates removed, order kept."""
    seen: set[tuple[Any, ...]] = set()
    out: list[dict[str, Any]] = []
    for error in raw:
        item = _describe(dict(error))
        key = (item["field"], item["message"], item["type"])
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    raw = list(exc.errors())
    json_error = next((e for e in raw if e.get("type") == "json_invalid"), None)
    if json_error is not None:
        detail = (json_error.get("ctx") or {}).get("error")
        position = json_error.get("loc", ("body", None))[-1]
        message = "the request body is not valid JSON"
        if detail:
            message += f": {detail}"
        if isinstance(position, int):
            message += f" (at character {position})"
        return error_response(400, "invalid_json", message, field="body")
    errors = validation_errors(raw)
    first = errors[0] if errors else {"field": None, "message": "invalid request"}
    message = f"{first['field']}: {first['message']}" if first["field"] else str(first["message"])
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return error_response(422, "validation_error", message, field=first["field"], errors=errors)


# --- Domain and infrastructure errors --------------------------------------------------------------


#: Headers an error of a status carries: when to retry, how to authenticate (RFC 6750).
_HEADERS_BY_STATUS: dict[int, dict[str, str]] = {
    503: {"Retry-After": str(RETRY_AFTER_S)},
    401: {"WWW-Authenticate": 'Bearer realm="textfleet"'},
}


def _status_of(exc: TextfleetError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


async def _on_textfleet_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TextfleetError)
    status_code = _status_of(exc)
    field = exc.field if isinstance(exc, InvalidInputError) else None
    headers = _HEADERS_BY_STATUS.get(status_code)
    if isinstance(exc, QuotaExceededError):
        headers = {"Retry-After": str(exc.retry_after_s)}
    if status_code >= 500:
        log.warning("request.failed", path=request.url.path, code=exc.code, error=exc.message)
    errors = [{"field": field, "message": exc.message, "type": exc.code}] if field is not None else None
    message = f"{field}: {exc.message}" if field is not None else exc.message
    return error_response(status_code, exc.code, message, field=field, errors=errors, headers=headers)


async def _on_operational_error(request: Request, exc: Exception) -> JSONResponse:
    # The database dropped or refused the connection: the same as TransientDatabaseError.
    log.warning("request.database_unavailable", path=request.url.path, error=safe_message(exc))
    return await _on_textfleet_error(request, TransientDatabaseError("the database is unavailable"))


def _method_not_allowed(request: Request) -> JSONResponse:
    """405 with `Allow` naming every method of the path: Starlette names only those of the first route
    whose path matched, and two routes (e.g. `GET` and `POST /v1/jobs`) may share a path."""
    matched: list[tuple[bool, set[str]]] = []  # (a literal path, its methods) of each matching route
    for route in request.app.router.routes:
        match, _child = route.matches({**request.scope, "method": "GET"})
        methods = getattr(route, "methods", None)
        if match is not Match.NONE and methods:
            matched.append(("{" not in getattr(route, "path", "{"), set(methods)))
    # A literal path (`/v1/jobs/batch`) is its own resource, not an instance of `/v1/jobs/{job_id}`.
    literal = any(is_literal for is_literal, _ in matched)
    allow = ", ".join(sorted({m for is_literal, ms in matched if is_literal or not literal for m in ms}))
    message = f"{request.method} is not allowed here; allowed: {allow}"
    return error_response(405, "method_not_allowed", message, headers={"Allow": allow})


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _BODY_UNPARSABLE:  # FastAPI's words for a non-JSON error
        message = "the request body is not valid JSON (not UTF-8, nested too deeply, or a number too long)"
        return error_response(400, "invalid_json", message, field="body")
    if exc.status_code == 405:
        return _method_not_allowed(request)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = str(exc.detail) if exc.detail else code.replace("_", " ")
    if exc.status_code == 404 and message == "Not Found":
        message = "no such route"
    return error_response(exc.status_code, code, message, headers=dict(exc.headers or {}) or None)


async def _on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception(
        "request.unhandled_error", path=request.url.path, error_type=type(exc).__name__, hide_message=True
    )
    return error_response(500, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    """Register every handler on `app`."""
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(TextfleetError, _on_textfleet_error)
    app.add_exception_handler(OperationalError, _on_operational_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected_error)
