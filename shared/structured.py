"""Structured output: the JSON Schema subset textfleet can constrain decoding to, checked at submission.

The generation engine constrains decoding with vLLM's xgrammar backend, which enforces most of JSON
Schema but silently *ignores* some keywords (`not`, `if`/`then`/`else`, `dependentRequired`, ...):
an output decoded under such a schema could still fail validation. So a schema is accepted only when
every keyword in it is one the backend enforces (see SUPPORTED_KEYWORDS and the README). The check is
pure Python (jsonschema for the metaschema, no vllm/torch), so the API runs it before storing a job.

Workers validate every constrained output again (shared.constraints.output_problem), against the same schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from typing import Any, cast

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from shared.limits import current_limits

__all__ = [
    "REJECTED_KEYWORDS",
    "STRING_FORMATS",
    "SUPPORTED_KEYWORDS",
    "check_regex",
    "check_schema",
    "default_extract_schema",
    "schema_json",
    "schema_validator",
    "where",
]

#: Keywords that only annotate (no effect on what is valid).
_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "$comment", "deprecated", "readOnly", "writeOnly"}
)
#: Keywords the decoder enforces, by what they apply to.
SUPPORTED_KEYWORDS = frozenset(
    {
        # any instance
        "type", "enum", "const", "anyOf", "allOf", "$ref", "$defs", "definitions",
        # strings
        "minLength", "maxLength", "pattern", "format",
        # numbers
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        # arrays
        "items", "prefixItems", "minItems", "maxItems",
        # objects
        "properties", "required", "additionalProperties", "minProperties", "maxProperties",
    }
)  # fmt: skip
#: Keywords the decoder does not enforce (or not exactly), with the reason given to clients.
REJECTED_KEYWORDS: dict[str, str] = {
    "oneOf": "`oneOf` is not enforced exactly (an output may match two branches); use `anyOf`",
    "not": "`not` is not enforced by the decoder",
    "if": "conditionals (`if`/`then`/`else`) are not enforced by the decoder",
    "then": "conditionals (`if`/`then`/`else`) are not enforced by the decoder",
    "else": "conditionals (`if`/`then`/`else`) are not enforced by the decoder",
    "dependentSchemas": "`dependentSchemas` is not enforced by the decoder",
    "dependentRequired": "`dependentRequired` is not enforced by the decoder",
    "dependencies": "`dependencies` is not enforced by the decoder",
    "patternProperties": "`patternProperties` is not supported; list the `properties`",
    "propertyNames": "`propertyNames` is not supported; list the `properties`",
    "unevaluatedProperties": "`unevaluatedProperties` is not supported; use `additionalProperties`",
    "unevaluatedItems": "`unevaluatedItems` is not supported; use `items`",
    "additionalItems": "`additionalItems` is not supported; use `prefixItems` and `items`",
    "contains": "`contains` is not enforced by the decoder",
    "minContains": "`minContains` is not enforced by the decoder",
    "maxContains": "`maxContains` is not enforced by the decoder",
    "uniqueItems": "`uniqueItems` is not enforced by the decoder",
    "multipleOf": "`multipleOf` is not enforced by the decoder",
    "$dynamicRef": "dynamic references are not supported",
    "$dynamicAnchor": "dynamic references are not supported",
    "$recursiveRef": "recursive references are not supported",
    "$recursiveAnchor": "recursive references are not supported",
    "$anchor": "anchors are not supported; use `$ref` to `#/$defs/...`",
    "$id": "`$id` is only allowed at the root",
    "$schema": "`$schema` is only allowed at the root",
    "$vocabulary": "custom vocabularies are not supported",
}
#: `format` values the decoder enforces.
STRING_FORMATS = frozenset(
    {
        "email", "date", "time", "date-time", "duration", "ipv4", "ipv6", "hostname", "uuid", "uri",
        "uri-reference", "uri-template", "json-pointer", "relative-json-pointer",
    }
)  # fmt: skip
#: Subschemas nested deeper than this are rejected (the decoder's own limit is 64 JSON levels).
MAX_SCHEMA_DEPTH = 24
#: Regular-expression constructs the decoder cannot compile: (pattern, what it is).
_REGEX_UNSUPPORTED = (
    (re.compile(r"\(\?(?!:)"), "lookarounds, named groups and inline flags (`(?...)` other than `(?:`)"),
    (re.compile(r"\\[1-9]"), "backreferences"),
    (re.compile(r"\\[bBAZz]"), "anchors other than ^ and $ (`\\b`, `\\B`, `\\A`, `\\Z`)"),
    (re.compile(r"\\[pP]\{"), "Unicode property classes"),
)
_ROOT_ONLY = frozenset({"$schema", "$id"})


# --- Regular expressions --------------------------------------------------------------------------


def check_regex(pattern: str, what: str = "regex") -> str:
    """Raise ValueError when `pattern` is not a regular expression the decoder can constrain to."""
    limit = current_limits().max_schema_chars
    if len(pattern) > limit:
        raise ValueError(f"{what} is {len(pattern)} characters long; the maximum is {limit}")
    if "\x00" in pattern:
        raise ValueError(f"{what} must not contain a NUL character")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{what} is not a valid regular expression: {exc}") from None
    # Strip escaped backslashes so `\\1` (a backslash, then 1) is not read as a backreference.
    scan = pattern.replace("\\\\", "")
    for construct, name in _REGEX_UNSUPPORTED:
        if construct.search(scan):
            raise ValueError(f"{what} uses {name}, which the decoder does not support")
    return pattern


# --- JSON Schema ----------------------------------------------------------------------------------


def _pointer(path: Iterator[str | int] | list[str | int] | tuple[str | int, ...]) -> str:
    """A JSON pointer (`/properties/a`) of a path inside the schema; `/` for the root."""
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
    return "/" + "/".join(parts)


def where(path: list[str | int] | tuple[str | int, ...]) -> str:
    """Where in a schema or document, for messages: `the root` or `` `/properties/a` ``."""
    return f"`{_pointer(path)}`" if path else "the root"


def _subschemas(node: dict[str, Any]) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """(relative path, subschema) of every schema directly inside `node`."""
    for key in ("properties", "$defs", "definitions"):
        children = node.get(key)
        if isinstance(children, dict):
            for name, child in children.items():
                yield (key, name), child
    for key in ("additionalProperties", "items"):
        if key in node:
            yield (key,), node[key]
    for key in ("prefixItems", "anyOf", "allOf"):
        children = node.get(key)
        if isinstance(children, list):
            for i, child in enumerate(children):
                yield (key, i), child


def _resolve(root: dict[str, Any], ref: str, at: str) -> tuple[str, Any]:
    """The JSON pointer and target of a local `$ref`; ValueError if it is remote or dangling."""
    if ref != "#" and not ref.startswith("#/"):
        raise ValueError(
            f"`$ref` {ref!r} at {at} is not local; only `#` and `#/...` references are supported"
        )
    target: Any = root
    for raw in ref[2:].split("/") if ref != "#" else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            raise ValueError(f"`$ref` {ref!r} at {at} points to nothing in the schema")
    return ref[1:] or "/", target


def _bounds(node: dict[str, Any], low: str, high: str, at: str) -> None:
    lo, hi = node.get(low), node.get(high)
    if isinstance(lo, int | float) and isinstance(hi, int | float) and lo > hi:
        raise ValueError(f"`{low}` is greater than `{high}` at {at}: nothing can match")


def _check_node(node: Any, path: tuple[str | int, ...], depth: int) -> None:
    at = where(path)
    if isinstance(node, bool):
        parent = path[-1] if path else None
        if parent in ("additionalProperties", "items"):
            return
        raise ValueError(f"a boolean schema at {at} is only supported as `additionalProperties` or `items`")
    if not isinstance(node, dict):
        raise ValueError(f"the schema at {at} is not an object")
    if depth > MAX_SCHEMA_DEPTH:
        raise ValueError(f"the schema nests deeper than {MAX_SCHEMA_DEPTH} levels at {at}")
    for key in node:
        if key in SUPPORTED_KEYWORDS or key in _ANNOTATIONS or (key in _ROOT_ONLY and not path):
            continue
        if key in REJECTED_KEYWORDS:
            raise ValueError(f"unsupported keyword `{key}` at {at}: {REJECTED_KEYWORDS[key]}")
        raise ValueError(
            f"unknown keyword `{key}` at {at}; supported: {', '.join(sorted(SUPPORTED_KEYWORDS))}"
        )
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) > 1:
        raise ValueError(f"`allOf` with more than one schema at {at} is not enforced by the decoder")
    if "items" in node and isinstance(node["items"], list):
        raise ValueError(f"`items` at {at} is a list; use `prefixItems` for tuples")
    fmt = node.get("format")
    if fmt is not None and fmt not in STRING_FORMATS:
        raise ValueError(
            f"`format` {fmt!r} at {at} is not supported; supported: {', '.join(sorted(STRING_FORMATS))}"
        )
    if ("pattern" in node or "format" in node) and ("minLength" in node or "maxLength" in node):
        raise ValueError(
            f"`pattern`/`format` together with `minLength`/`maxLength` at {at} is not enforced by the "
            "decoder; put the length in the pattern (e.g. `^[a-z]{1,20}$`)"
        )
    if isinstance(node.get("pattern"), str):
        check_regex(node["pattern"], what=f"`pattern` at {at}")
    _bounds(node, "minLength", "maxLength", at)
    _bounds(node, "minItems", "maxItems", at)
    _bounds(node, "minProperties", "maxProperties", at)
    _bounds(node, "minimum", "maximum", at)
    if isinstance(node.get("enum"), list) and not node["enum"]:
        raise ValueError(f"`enum` at {at} is empty: nothing can match")
    for rel, child in _subschemas(node):
        _check_node(child, (*path, *rel), depth + 1)


def _check_refs(root: dict[str, Any]) -> None:
    """Every `$ref` is local and resolves, and no chain of references loops (unbounded recursion)."""
    edges: dict[str, list[str]] = {}

    def collect(node: Any, path: tuple[str | int, ...]) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                target, _ = _resolve(root, ref, where(path))
                edges.setdefault(_pointer(path), []).append(target)
            for rel, child in _subschemas(node):
                collect(child, (*path, *rel))

    collect(root, ())
    if not edges:
        return
    # A reference inside the target's subtree also leads back there: walk pointer prefixes.
    pointers = sorted(edges)

    def refs_under(prefix: str) -> list[str]:
        base = prefix.rstrip("/")
        return [p for p in pointers if p == prefix or p.startswith(base + "/") or prefix == "/"]

    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(pointer: str, trail: list[str]) -> None:
        state[pointer] = 1
        for source in refs_under(pointer):
            for target in edges[source]:
                if state.get(target) == 1:
                    raise ValueError(
                        f"the schema is recursive (`$ref` at `{source}` leads back to `{target}`); "
                        "recursive schemas are not supported because the output could grow without bound"
                    )
                if state.get(target) is None:
                    visit(target, [*trail, target])
        state[pointer] = 2

    visit("/", ["/"])


def check_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Raise ValueError, naming the problem and where it is, unless `schema` is a valid JSON Schema
    within the subset the decoder enforces. Returns the schema unchanged (a pydantic AfterValidator).

    Verdicts are cached by the schema's JSON text: a batch of 10,000 jobs sharing one schema checks it once
    (the metaschema check alone costs milliseconds)."""
    if not isinstance(schema, dict):
        raise ValueError("the schema must be a JSON object")
    text = schema_json(schema)
    limit = current_limits().max_schema_chars
    if len(text) > limit:
        raise ValueError(f"the schema is {len(text)} characters long as JSON; the maximum is {limit}")
    problem = _schema_problem(text)
    if problem is not None:
        raise ValueError(problem)
    return schema


@lru_cache(maxsize=1024)
def _schema_problem(text: str) -> str | None:
    """What is wrong with the schema whose JSON text is `text` (None: nothing)."""
    schema = json.loads(text)
    if "$schema" in schema and validator_for(schema, default=cast(Any, None)) is None:
        return f"`$schema` {schema['$schema']!r} is not a JSON Schema draft jsonschema knows"
    try:
        _validator_class(schema).check_schema(schema)
    except SchemaError as exc:
        return f"not a valid JSON Schema: {exc.message} at {where(list(exc.path))}"
    try:
        _check_node(schema, (), 0)
        _check_refs(schema)
    except ValueError as exc:
        return str(exc)
    return None


def _validator_class(schema: dict[str, Any]) -> type[Validator]:
    return validator_for(schema, default=Draft202012Validator)


def schema_json(schema: dict[str, Any]) -> str:
    """The compact JSON text of a schema: what the engine compiles (and caches grammars by)."""
    return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)


@lru_cache(maxsize=512)
def schema_validator(text: str) -> Validator:
    """A jsonschema validator of the schema whose JSON text is `text` (cached: built once per schema)."""
    schema = json.loads(text)
    return _validator_class(schema)(schema)


@lru_cache(maxsize=1)
def default_extract_schema() -> dict[str, Any]:
    """The `extract` task's schema when a job gives none: entities and relations (a data file)."""
    text = resources.files("shared").joinpath("extract_default_schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
