"""Input hygiene every request model shares: no value that cannot be stored, logged or returned.

`RequestModel` is the base of every model the API validates a request with. Before a model's own
validation runs, its whole raw input is walked once (the outermost `RequestModel` walks; the ones
nested in it do not walk again) and refused, naming each field, if it holds:

- a string (value *or* key, at any depth, metadata included) with a NUL character (`\\u0000`):
  PostgreSQL refuses it, and C libraries cut strings at it;
- a string with a lone surrogate (`"\\udfff"` is valid JSON but not Unicode): it cannot be encoded as
  UTF-8, so it can be neither stored in PostgreSQL nor sent back in a response;
- a number that is NaN or ±Infinity (`NaN`, `Infinity` and overflowing literals such as `1e999`, which
  a lenient JSON parser turns into floats): JSON cannot represent it.

`check_clean_str` applies the same rule to a single string outside any model (e.g. a header).
`check_json_bounds` bounds a free-form JSON value (a job's `metadata`) in size and nesting depth.
"""

from __future__ import annotations

import contextvars
import json
import math
import re
from collections.abc import Iterator
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ModelWrapValidatorHandler, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = [
    "KEY",
    "RequestModel",
    "check_clean_str",
    "check_json_bounds",
    "check_no_credentials",
    "find_poison",
    "json_depth",
    "string_problem",
]

#: The `loc` part that marks a problem in a mapping's key rather than its value (the key itself is the
#: client's text, possibly the poison, so it is never echoed).
KEY = "[key]"

_SURROGATE = re.compile("[\ud800-\udfff]")
_NUL_MESSAGE = "must not contain NUL characters (\\u0000)"
_SURROGATE_MESSAGE = "must not contain unpaired surrogates (\\ud800-\\udfff are not valid Unicode text)"
_NUMBER_MESSAGE = "must be a finite number (NaN and Infinity are not JSON)"

_U = TypeVar("_U")

#: Set while the outermost RequestModel validates, so the models nested in it do not walk again.
_walked: contextvars.ContextVar[bool] = contextvars.ContextVar("textfleet_input_walked", default=False)


def string_problem(value: str) -> str | None:
    """Why `value` cannot be accepted (None if it can)."""
    if "\x00" in value:
        return _NUL_MESSAGE
    if not value.isascii() and _SURROGATE.search(value) is not None:
        return _SURROGATE_MESSAGE
    return None


def check_clean_str(value: str) -> str:
    """`value` unchanged, or ValueError saying what it must not contain (for `AfterValidator`)."""
    problem = string_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def check_no_credentials(url: _U) -> _U:
    """`url` unchanged, or ValueError if it carries credentials (`https://user:password@host/`): a
    secret in a URL is stored, shown in every GET of the job and written to access logs."""
    if url is not None and (getattr(url, "username", None) or getattr(url, "password", None)):
        raise ValueError("webhook URL must not contain credentials (user:password@)")
    return url


def json_depth(value: Any) -> int:
    """How deeply objects and arrays nest in `value` (a scalar is 0, a flat object 1); iterative."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            stack.extend((child, depth) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def check_json_bounds(value: _U, *, name: str, max_bytes: int, max_depth: int) -> _U:
    """`value` unchanged, or ValueError if it nests deeper than `max_depth` or is larger than
    `max_bytes` as compact UTF-8 JSON (for `BeforeValidator`: checked on the raw input, so a deep
    document never reaches a recursive validator). A value that is not JSON is left to the type check."""
    if not isinstance(value, dict | list):
        return value
    depth = json_depth(value)
    if depth > max_depth:
        raise ValueError(f"{name} nests {depth} levels deep; the maximum is {max_depth}")
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return value
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ValueError(f"{name} is {size} bytes as JSON; the maximum is {max_bytes}")
    return value


def find_poison(data: Any) -> Iterator[tuple[tuple[int | str, ...], str, str]]:
    """`(loc, error type, message)` of every unacceptable string or number in `data`, in document order.

    Walks dicts, lists and tuples iteratively (no recursion limit to hit on deeply nested input);
    a bad key is reported at `(*path, KEY)`, never by its text."""
    stack: list[tuple[tuple[int | str, ...], Any]] = [((), data)]
    while stack:
        loc, value = stack.pop()
        if isinstance(value, _BadKey):
            yield loc, "invalid_characters", f"a key {value.problem}"
        elif isinstance(value, str):
            problem = string_problem(value)
            if problem is not None:
                yield loc, "invalid_characters", problem
        elif isinstance(value, float):
            if not math.isfinite(value):
                yield loc, "finite_number", _NUMBER_MESSAGE
        elif isinstance(value, dict):
            children: list[tuple[tuple[int | str, ...], Any]] = []
            for key, item in value.items():
                problem = string_problem(key) if isinstance(key, str) else None
                if problem is not None:
                    children.append(((*loc, KEY), _BadKey(problem)))
                else:
                    children.append(((*loc, key), item))
            stack.extend(reversed(children))
        elif isinstance(value, list | tuple):
            stack.extend(reversed([((*loc, index), item) for index, item in enumerate(value)]))


class _BadKey:
    """A mapping key that cannot be accepted, in the walk's place of its value."""

    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem


class RequestModel(BaseModel):
    """Base of every request model: unknown fields are refused, values are not coerced from another
    JSON type, and any NUL, lone surrogate, NaN or Infinity anywhere in the input is refused (one 422
    item per offending field)."""

    # strict: JSON types are not coerced (`"5"`, `true` or `5.0` is no integer, `1` no boolean); an enum
    # field that takes its value's text says `Field(strict=False)` (JSON has no enums).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    @model_validator(mode="wrap")
    @classmethod
    def _refuse_poison(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        if _walked.get():
            return handler(data)
        if not isinstance(data, BaseModel):  # a model instance was checked when it was built
            errors = [
                InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=None)
                for loc, kind, message in find_poison(data)
            ]
            if errors:
                raise ValidationError.from_exception_data(cls.__name__, errors)
        token = _walked.set(True)
        try:
            return handler(data)
        finally:
            _walked.reset(token)
