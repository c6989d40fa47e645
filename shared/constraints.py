"""The constraint a generation runs under, and the worker's check of its output.

`OutputConstraint` travels from a job's params to the engine (`engine_options()` are vLLM's
`StructuredOutputsParams`); `output_problem` says why an output breaks its constraint, if it does.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal

from jsonschema.exceptions import best_match

from shared.structured import schema_json, schema_validator, where

__all__ = ["OutputConstraint", "output_problem", "parse_json_output"]


class OutputConstraint:
    """What a generation's output is constrained to: a JSON Schema, any JSON object, a regex or a choice."""

    __slots__ = ("kind", "spec")

    def __init__(self, kind: Literal["json", "json_object", "regex", "choice"], spec: Any = None) -> None:
        self.kind = kind
        self.spec = spec

    def __repr__(self) -> str:
        return f"OutputConstraint({self.kind!r}, {self.spec!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OutputConstraint) and (self.kind, self.spec) == (other.kind, other.spec)

    def __hash__(self) -> int:
        return hash((self.kind, json.dumps(self.spec, sort_keys=True)))

    @classmethod
    def json_schema(cls, schema: dict[str, Any]) -> OutputConstraint:
        return cls("json", schema)

    def engine_options(self) -> dict[str, Any]:
        """Keyword arguments of vLLM's `StructuredOutputsParams`."""
        if self.kind == "json":
            # The same text for the same schema: vLLM's grammar compiler caches by it.
            return {"json": schema_json(self.spec)}
        if self.kind == "json_object":
            return {"json_object": True}
        if self.kind == "regex":
            return {"regex": self.spec}
        return {"choice": list(self.spec)}


def _finite(value: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"number {value} is out of range")
    return number


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json_output(text: str) -> Any:
    """Parse generated JSON strictly (no NaN/Infinity, no numbers that overflow to infinity)."""
    return json.loads(text, parse_float=_finite, parse_constant=_reject_constant)


def output_problem(constraint: OutputConstraint, text: str, finish_reason: str) -> str | None:
    """Why `text` does not satisfy `constraint` (None when it does)."""
    truncated = finish_reason == "length"
    if constraint.kind in ("json", "json_object"):
        try:
            data = parse_json_output(text)
        except ValueError as exc:
            if truncated:
                return (
                    "the output was cut off at max_tokens before the JSON was complete; raise "
                    "params.max_tokens or bound the schema (maxItems, maxLength, enums)"
                )
            return f"the output is not valid JSON: {exc}"
        if constraint.kind == "json_object":
            return None if isinstance(data, dict) else "the output is not a JSON object"
        error = best_match(schema_validator(schema_json(constraint.spec)).iter_errors(data))
        if error is not None:
            return f"the output does not match the schema: {error.message} at {where(list(error.path))}"
        return None
    if constraint.kind == "regex":
        if re.fullmatch(constraint.spec, text) is not None:
            return None
        return "the output was cut off at max_tokens" if truncated else "the output does not match the regex"
    if text in constraint.spec:
        return None
    return "the output was cut off at max_tokens" if truncated else "the output is not one of the choices"
