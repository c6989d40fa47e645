"""A batch input file, validated line by line: every request as a job, or every bad line's error.

Errors use OpenAI's batch error shape, `{"code", "message", "param", "line"}` (1-based lines); one bad
line fails the whole batch (nothing is stored or run), and up to `max_errors` of them are reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from api.batches.requests import Line, LineError, to_jobs
from shared.constants import TaskName
from shared.schemas import JobCreate
from shared.validation import string_problem

__all__ = ["Parsed", "Request", "parse_batch_file"]


@dataclass(frozen=True, slots=True)
class Request:
    """One valid line: its custom_id, line number, the model it named, and its jobs (one per input)."""

    custom_id: str
    line: int
    model: str | None
    jobs: list[JobCreate]


@dataclass(slots=True)
class Parsed:
    requests: list[Request]
    errors: list[dict[str, Any]]


_TASKS = frozenset(task.value for task in TaskName)


def _error(line: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": f"line {line}: {message}", "param": param, "line": line}


def _first_problem(exc: ValidationError, prefix: str) -> tuple[str, str]:
    """(param, message) of a validation error's first problem; `param` a dotted path like `body.input`."""
    first = exc.errors(include_url=False, include_input=False)[0]
    loc = [str(part) for part in first["loc"]]
    if loc and loc[0] in _TASKS:  # the union's tag of a `/v1/jobs` body: `moderate.input.text`
        loc = loc[1:]
    param = ".".join([prefix, *loc]) if prefix else ".".join(loc)
    message = str(first["msg"]).removeprefix("Value error, ")
    return param, f"{param}: {message}" if param else message


def parse_batch_file(
    data: bytes,
    *,
    endpoint: str,
    priority: int,
    max_requests: int,
    max_errors: int,
    webhooks_enabled: bool,
    generation_model: str,
) -> Parsed:
    """Validate every line of `data` (JSONL) for a batch on `endpoint`."""
    parsed = Parsed(requests=[], errors=[])
    seen: set[str] = set()
    count = 0
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if len(parsed.errors) >= max_errors:
            break
        if not raw.strip():
            continue
        count += 1
        error = _check_line(raw, number, endpoint, priority, seen, webhooks_enabled, generation_model)
        if isinstance(error, dict):
            parsed.errors.append(error)
        else:
            parsed.requests.append(error)
    if count > max_requests:
        parsed.errors.insert(
            0,
            {
                "code": "too_many_requests",
                "message": f"the file holds {count} requests; a batch takes at most {max_requests}",
                "param": None,
                "line": None,
            },
        )
    elif count == 0 and not parsed.errors:
        parsed.errors.append(
            {"code": "empty_file", "message": "the file holds no request", "param": None, "line": None}
        )
    return parsed


def _check_line(
    raw: bytes,
    number: int,
    endpoint: str,
    priority: int,
    seen: set[str],
    webhooks_enabled: bool,
    generation_model: str,
) -> Request | dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(number, "invalid_json_line", f"not valid JSON ({exc})")
    try:
        line = Line.model_validate(value)
    except ValidationError as exc:
        param, message = _first_problem(exc, "")
        return _error(number, "invalid_request", message, param)
    problem = string_problem(line.custom_id)
    if problem is not None:
        return _error(number, "invalid_request", f"custom_id {problem}", "custom_id")
    if line.url != endpoint:
        return _error(
            number, "mismatched_url", f"url is {line.url!r}, but this batch's endpoint is {endpoint!r}", "url"
        )
    if line.custom_id in seen:
        return _error(
            number,
            "duplicate_custom_id",
            f"custom_id {line.custom_id!r} is used by an earlier line",
            "custom_id",
        )
    seen.add(line.custom_id)
    try:
        jobs, model = to_jobs(line.url, line.body, priority, generation_model)
    except ValidationError as exc:
        param, message = _first_problem(exc, "body")
        return _error(number, "invalid_body", message, param)
    except LineError as exc:
        return _error(number, "invalid_body", exc.message, exc.param)
    if any(job.webhook is not None for job in jobs) and not webhooks_enabled:
        return _error(
            number,
            "invalid_body",
            "webhooks are not enabled on this deployment (TEXTFLEET_WEBHOOK_SECRET is not set)",
            "body.webhook",
        )
    return Request(custom_id=line.custom_id, line=number, model=model, jobs=jobs)
