"""The OpenAPI document as the API really answers: `install_openapi(app)` replaces FastAPI's generator.

FastAPI describes what the route signatures say. What the app adds around them is written in here,
in one pass over the generated document, so `GET /openapi.json` (and every client or fuzzer built
from it, tests/api/fuzz) sees the answers the API really gives:

- **Error shapes.** Every 4xx/5xx is `ErrorResponse` (`api.errors`), or OpenAI's
  `{"error": {"message", "type", "param", "code"}}` on the OpenAI-compatible routes (`OpenAIRoute`),
  which answer `400` where the others answer `422`. FastAPI's own `HTTPValidationError` is never sent,
  so it is replaced everywhere.
- **Statuses added around the routes.** `401` (with `WWW-Authenticate`) and `403` on every operation
  that needs an API key (`api.auth`), `413` on every operation with a body (`api.limits`), `400`
  on every JSON body (not JSON), `422` (`400` on OpenAI routes) wherever a parameter or body is
  validated, and `200` beside the `202` of an operation that takes an `Idempotency-Key` (a replay).
- **Content types.** Streams (`text/event-stream`) of the completion routes; a file's bytes.
- **Limits of this deployment** (the app's own settings) and formats the routes check by hand:
  `?wait` at most `max_wait_s`, `?limit` at most `list_max_limit`, a cursor is a job id (ULID), a
  webhook event is `started` or `completed`, and no path or query parameter holds a NUL character.
- **Links** (OpenAPI 3 `links`) from each created resource to the operations on it, which stateful
  clients (schemathesis) follow.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from api.openai.errors import OpenAIRoute
from shared.settings import Settings

__all__ = ["OPENAI_ERROR", "install_openapi"]

_REF = "#/components/schemas/"
OPENAI_ERROR = "OpenAIError"
_OPENAI_ERROR_SCHEMA: dict[str, Any] = {
    "title": OPENAI_ERROR,
    "type": "object",
    "description": 'OpenAI\'s error shape: `{"error": {"message", "type", "param", "code"}}`.',
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "code": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            },
        }
    },
}
_NO_NUL = "^[^\\u0000]*$"
_ULID_PATTERN = "^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$"
_WHY = {
    400: "Bad request: the body is not valid JSON (or, on OpenAI routes, any invalid parameter).",
    413: "The request body is larger than this deployment accepts (`max_body_bytes`).",
    422: "A parameter or the body is invalid; `error.field` names it.",
    401: "No API key, or not a valid one (`Authorization: Bearer tfk_...`).",
    403: "The API key lacks the scope this operation needs.",
}
_UNAUTHENTICATED: dict[str, Any] = {
    "description": _WHY[401],
    "headers": {"WWW-Authenticate": {"description": "`Bearer` (RFC 6750).", "schema": {"type": "string"}}},
}

#: (path, method) -> {parameter: schema changes}; values may read the app's settings.
_PARAMETERS: dict[tuple[str, str], dict[str, Callable[[Settings], dict[str, Any]]]] = {
    ("/v1/jobs", "get"): {
        "limit": lambda s: {"maximum": s.list_max_limit},
        "cursor": lambda _s: {"pattern": _ULID_PATTERN},
    },
    ("/v1/jobs/{job_id}", "get"): {"wait": lambda s: {"maximum": s.max_wait_s}},
    ("/v1/jobs/{job_id}/webhooks/{event}/resend", "post"): {
        "event": lambda _s: {"enum": ["started", "completed"]},
    },
}

_ID = "$response.body#/id"
#: (path, method, status) -> the links of that response: name -> (target path, method, link fields).
_LINKS: dict[tuple[str, str, str], dict[str, tuple[str, str, dict[str, Any]]]] = {
    ("/v1/jobs", "post", "202"): {
        "GetJob": ("/v1/jobs/{job_id}", "get", {"parameters": {"job_id": _ID}}),
        "CancelJob": ("/v1/jobs/{job_id}/cancel", "post", {"parameters": {"job_id": _ID}}),
    },
    ("/v1/files", "post", "200"): {
        "GetFile": ("/v1/files/{file_id}", "get", {"parameters": {"file_id": _ID}}),
        "GetFileContent": ("/v1/files/{file_id}/content", "get", {"parameters": {"file_id": _ID}}),
        "DeleteFile": ("/v1/files/{file_id}", "delete", {"parameters": {"file_id": _ID}}),
        "CreateBatch": ("/v1/batches", "post", {"requestBody": {"input_file_id": _ID}}),
    },
    ("/v1/batches", "post", "200"): {
        "GetBatch": ("/v1/batches/{batch_id}", "get", {"parameters": {"batch_id": _ID}}),
        "CancelBatch": ("/v1/batches/{batch_id}/cancel", "post", {"parameters": {"batch_id": _ID}}),
    },
}


def _json(schema_name: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF + schema_name}}},
    }


def _error_statuses(operation: dict[str, Any], openai: bool) -> None:
    """Every error response in the route family's one shape; the statuses the app adds, declared."""
    responses: dict[str, Any] = operation["responses"]
    shape = OPENAI_ERROR if openai else "ErrorResponse"
    validated = bool(operation.get("parameters")) or "requestBody" in operation
    body = operation.get("requestBody", {}).get("content", {})
    if openai:
        responses.pop("422", None)
        if validated:
            responses.setdefault("400", {"description": _WHY[400]})
    elif validated:
        responses.setdefault("422", {"description": _WHY[422]})
    if operation.get("security"):  # the /v1 routes (api.auth): no valid key, or a key lacking the scope
        responses.setdefault("401", _UNAUTHENTICATED)
        responses.setdefault("403", {"description": _WHY[403]})
    if "application/json" in body:
        responses.setdefault("400", {"description": _WHY[400]})
    if body:
        responses.setdefault("413", {"description": _WHY[413]})
    for status, response in responses.items():
        if status[0] in "45":
            description = response.get("description") or _WHY.get(int(status), "Error")
            if description == "Validation Error":
                description = _WHY[422]
            headers = response.get("headers")
            responses[status] = _json(shape, description)
            if headers:
                responses[status]["headers"] = headers


def _idempotent_replay(operation: dict[str, Any]) -> None:
    names = {p.get("name", "").lower() for p in operation.get("parameters", [])}
    responses = operation["responses"]
    if "idempotency-key" in names and "202" in responses and "200" not in responses:
        replay = copy.deepcopy(responses["202"])
        replay["description"] = "A replay: the same Idempotency-Key and body, answered with the original."
        replay.pop("links", None)
        responses["200"] = replay


def _content_types(path: str, method: str, operation: dict[str, Any]) -> None:
    ok = operation["responses"].get("200")
    if ok is None:
        return
    if (path, method) in {("/v1/chat/completions", "post"), ("/v1/completions", "post")}:
        ok["content"]["text/event-stream"] = {
            "schema": {"type": "string", "description": "Server-sent events (with `stream: true`)."}
        }
    if (path, method) == ("/v1/files/{file_id}/content", "get"):
        binary = {"schema": {"type": "string", "format": "binary"}}
        ok["content"] = {"application/octet-stream": binary, "application/jsonl": binary}


def _parameters(path: str, method: str, operation: dict[str, Any], settings: Settings) -> None:
    changes = _PARAMETERS.get((path, method), {})
    for parameter in operation.get("parameters", []):
        schema = parameter["schema"]
        target = next((s for s in schema.get("anyOf", []) if s.get("type") != "null"), schema)
        change = changes.get(parameter["name"])
        if change is not None:
            target.update(change(settings))
        free_text = target.get("type") == "string" and not {"pattern", "enum", "format"} & set(target)
        if parameter["in"] in {"path", "query"} and free_text:
            target["pattern"] = _NO_NUL  # api.limits.check_url_params


def _add_links(paths: dict[str, Any]) -> None:
    for (path, method, status), links in _LINKS.items():
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        found = {}
        for name, (target, target_method, fields) in links.items():
            operation = paths.get(target, {}).get(target_method)
            if operation is not None and "operationId" in operation:
                found[name] = {"operationId": operation["operationId"], **copy.deepcopy(fields)}
        response["links"] = found


def honest_openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """The app's OpenAPI document, with what the app answers around its routes (module docstring)."""
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        openapi_version=app.openapi_version,
    )
    openai_paths = {
        (route.path_format, method.lower())
        for route in app.routes
        if isinstance(route, APIRoute) and isinstance(route, OpenAIRoute)
        for method in route.methods
    }
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas[OPENAI_ERROR] = _OPENAI_ERROR_SCHEMA
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            _error_statuses(operation, (path, method) in openai_paths)
            _idempotent_replay(operation)
            _content_types(path, method, operation)
            _parameters(path, method, operation, settings)
    _add_links(document["paths"])
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Serve `honest_openapi` at the app's `openapi_url` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = honest_openapi(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
