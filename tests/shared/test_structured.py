"""Structured output: the JSON Schema subset check, regexes, response_format and the output check."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import TypeAdapter, ValidationError

from shared.constraints import OutputConstraint, output_problem
from shared.response_format import ResponseFormat
from shared.schemas import ExtractParams, JobCreate, parse_job_payload
from shared.settings import get_settings
from shared.structured import check_regex, check_schema, default_extract_schema, schema_json

adapter: TypeAdapter[object] = TypeAdapter(JobCreate)

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "email": {"type": "string", "format": "email"},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string", "pattern": "^[A-Z][a-z]{1,20}$"}},
            "required": ["city"],
        },
        "nick": {"anyOf": [{"type": "string", "maxLength": 10}, {"type": "null"}]},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}

GOOD_SCHEMAS: list[tuple[str, dict[str, Any]]] = [
    ("nested object, arrays, enums, optional fields", PERSON),
    ("empty object schema", {"type": "object"}),
    ("root array", {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 2}),
    ("tuple", {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False}),
    (
        "const and enum",
        {"type": "object", "properties": {"k": {"const": "x"}, "e": {"enum": [1, "two", None]}}},
    ),
    (
        "local $ref to $defs",
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$defs": {"pt": {"type": "object", "properties": {"x": {"type": "number"}}}},
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/pt"}, "b": {"$ref": "#/$defs/pt"}},
        },
    ),
    (
        "draft-07 definitions",
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "definitions": {"s": {"type": "string", "maxLength": 3}},
            "type": "array",
            "items": {"$ref": "#/definitions/s"},
        },
    ),
    ("single allOf", {"allOf": [{"type": "integer", "maximum": 3}]}),
    ("annotations", {"title": "T", "description": "d", "type": "string", "examples": ["x"], "default": "x"}),
    ("type list", {"type": ["string", "null"]}),
    ("default extract schema", default_extract_schema()),
]

BAD_SCHEMAS: list[tuple[str, Any, str]] = [
    ("not an object", ["type", "object"], "JSON object"),
    ("bad type name", {"type": "objec"}, "not a valid JSON Schema"),
    ("bad maxLength", {"type": "string", "maxLength": -1}, "not a valid JSON Schema"),
    ("unknown $schema", {"$schema": "http://example.com/mine", "type": "object"}, "`$schema`"),
    ("if/then/else", {"type": "object", "if": {"required": ["a"]}, "then": {}}, "unsupported keyword `if`"),
    ("not", {"not": {"type": "string"}}, "unsupported keyword `not`"),
    ("oneOf", {"oneOf": [{"type": "integer"}, {"type": "number"}]}, "use `anyOf`"),
    ("patternProperties", {"type": "object", "patternProperties": {"^a": {}}}, "`patternProperties`"),
    ("dependentSchemas", {"type": "object", "dependentSchemas": {"a": {}}}, "`dependentSchemas`"),
    ("uniqueItems", {"type": "array", "uniqueItems": True}, "`uniqueItems`"),
    ("multipleOf", {"type": "integer", "multipleOf": 5}, "`multipleOf`"),
    (
        "nested unsupported keyword",
        {"type": "object", "properties": {"a": {"type": "array", "contains": {"const": 1}}}},
        "`/properties/a`",
    ),
    ("unknown keyword (typo)", {"type": "array", "maxitems": 3}, "unknown keyword `maxitems`"),
    ("remote $ref", {"type": "object", "properties": {"a": {"$ref": "https://x.org/s.json"}}}, "not local"),
    ("dangling $ref", {"properties": {"a": {"$ref": "#/$defs/missing"}}}, "points to nothing"),
    (
        "recursive $ref",
        {
            "$defs": {
                "node": {"type": "object", "properties": {"kids": {"items": {"$ref": "#/$defs/node"}}}}
            },
            "$ref": "#/$defs/node",
        },
        "recursive",
    ),
    ("self reference", {"type": "array", "items": {"$ref": "#"}}, "recursive"),
    ("multi-branch allOf", {"allOf": [{"type": "string"}, {"maxLength": 2}]}, "`allOf`"),
    ("unsupported format", {"type": "string", "format": "credit-card"}, "`format`"),
    ("pattern with length", {"type": "string", "pattern": "^a+$", "maxLength": 4}, "put the length"),
    ("lookahead pattern", {"type": "string", "pattern": "(?=a)a"}, "lookarounds"),
    ("minimum above maximum", {"type": "integer", "minimum": 5, "maximum": 1}, "nothing can match"),
    ("empty enum", {"enum": []}, "nothing can match"),
    ("boolean property schema", {"type": "object", "properties": {"a": True}}, "boolean schema"),
    ("items as a list", {"type": "array", "items": [{"type": "string"}]}, "not a valid JSON Schema"),
    ("$id below the root", {"type": "object", "properties": {"a": {"$id": "x"}}}, "`$id`"),
]


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize("schema", [s for _, s in GOOD_SCHEMAS], ids=[n for n, _ in GOOD_SCHEMAS])
def test_supported_schemas_pass_unchanged(schema: dict[str, Any]) -> None:
    assert check_schema(schema) is schema


@pytest.mark.parametrize(
    ("schema", "problem"), [(s, p) for _, s, p in BAD_SCHEMAS], ids=[n for n, _, _ in BAD_SCHEMAS]
)
def test_unsupported_schemas_are_rejected_naming_the_problem(schema: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        check_schema(schema)


def test_schema_size_is_limited_by_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTFLEET_MAX_SCHEMA_CHARS", "100")
    get_settings.cache_clear()
    small = {"type": "object"}
    check_schema(small)
    big = {"type": "object", "properties": {f"field_{i}": {"type": "string"} for i in range(10)}}
    with pytest.raises(ValueError, match="the maximum is 100"):
        check_schema(big)


@pytest.mark.parametrize(
    "pattern", [r"[A-Z]{3}-\d{4}", r"(yes|no)", r"^\w+@\w+\.com$", r"\\1 literal", r"(?:ab)+"]
)
def test_supported_regexes(pattern: str) -> None:
    assert check_regex(pattern) == pattern


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("(unclosed", "not a valid regular expression"),
        (r"(a)\1", "backreferences"),
        (r"(?=a)a", "lookarounds"),
        (r"(?P<x>a)", "named groups"),
        (r"\bword\b", "anchors"),
        ("a\x00b", "NUL"),
    ],
)
def test_unsupported_regexes(pattern: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        check_regex(pattern)


def test_default_extract_schema_is_the_data_file_of_entities_and_relations() -> None:
    schema = default_extract_schema()
    assert schema["required"] == ["entities", "relations"]
    relation = schema["properties"]["relations"]["items"]
    assert relation["required"] == ["head", "relation", "tail"]
    Draft202012Validator.check_schema(schema)
    sample = {"entities": [{"text": "Ada", "type": "PERSON"}], "relations": []}
    assert output_problem(OutputConstraint.json_schema(schema), schema_json(sample), "stop") is None


def test_extract_params_keep_the_client_field_name_schema() -> None:
    job = adapter.validate_python(
        {"task": "extract", "input": {"text": "Ada met Bob."}, "params": {"schema": PERSON, "max_tokens": 64}}
    )
    params = job.params  # type: ignore[attr-defined]
    assert isinstance(params, ExtractParams) and params.schema_ == PERSON
    stored = params.model_dump(mode="json", exclude_unset=True, exclude_none=True)
    assert stored == {"schema": PERSON, "max_tokens": 64}
    _, parsed = parse_job_payload("extract", {"text": "x"}, stored)
    assert isinstance(parsed, ExtractParams) and parsed.schema_ == PERSON
    default = adapter.validate_python({"task": "extract", "input": {"text": "x"}})
    assert default.params.schema_ is None  # type: ignore[attr-defined]


def test_bad_extract_schema_is_reported_at_params_schema() -> None:
    with pytest.raises(ValidationError) as caught:
        adapter.validate_python(
            {"task": "extract", "input": {"text": "x"}, "params": {"schema": {"not": {}}}}
        )
    (error,) = caught.value.errors()
    assert error["loc"] == ("extract", "params", "schema")
    assert "unsupported keyword `not`" in error["msg"]


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"type": "text"}, None),
        ({"type": "json_object"}, "json_object"),
        (
            {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}},
            "json",
        ),
        ({"type": "regex", "regex": "[0-9]{3}"}, "regex"),
        ({"type": "choice", "choice": ["yes", "no"]}, "choice"),
    ],
)
def test_response_formats(body: dict[str, Any], kind: str | None) -> None:
    fmt = ResponseFormat.model_validate(body)
    constraint = fmt.constraint()
    assert (constraint.kind if constraint else None) == kind
    assert fmt.model_dump(mode="json", exclude_none=True) == body


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"type": "json_schema"}, ()),
        ({"type": "regex", "choice": ["a"]}, ()),
        ({"type": "choice", "choice": ["a"], "regex": "a"}, ()),
        ({"type": "choice", "choice": []}, ("choice",)),
        ({"type": "choice", "choice": ["a", "a"]}, ("choice",)),
        ({"type": "regex", "regex": "(?=x)"}, ("regex",)),
        ({"type": "json_schema", "json_schema": {"name": "bad name", "schema": {}}}, ("json_schema", "name")),
        (
            {"type": "json_schema", "json_schema": {"name": "n", "schema": {"not": {}}}},
            ("json_schema", "schema"),
        ),
        ({"type": "yaml"}, ("type",)),
    ],
)
def test_bad_response_formats_name_the_field(body: dict[str, Any], loc: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as caught:
        ResponseFormat.model_validate(body)
    assert caught.value.errors()[0]["loc"] == loc


def test_engine_options_are_stable_text_for_the_grammar_cache() -> None:
    a = OutputConstraint.json_schema(dict(PERSON))
    b = OutputConstraint.json_schema(dict(PERSON))
    assert a.engine_options() == b.engine_options() == {"json": schema_json(PERSON)}
    assert a == b and hash(a) == hash(b)
    assert OutputConstraint("choice", ("x", "y")).engine_options() == {"choice": ["x", "y"]}
    assert OutputConstraint("json_object").engine_options() == {"json_object": True}


@pytest.mark.parametrize(
    ("constraint", "text", "finish", "problem"),
    [
        (OutputConstraint.json_schema(PERSON), '{"name":"Ada","age":36}', "stop", None),
        (
            OutputConstraint.json_schema(PERSON),
            '{"name":"Ada","age":-1}',
            "stop",
            "does not match the schema",
        ),
        (OutputConstraint.json_schema(PERSON), '{"name":"Ada"}', "stop", "'age' is a required property"),
        (OutputConstraint.json_schema(PERSON), '{"name":"Ada","ag', "length", "cut off at max_tokens"),
        (OutputConstraint.json_schema(PERSON), "not json", "stop", "not valid JSON"),
        (OutputConstraint.json_schema({"type": "number"}), "1e400", "stop", "not valid JSON"),
        (OutputConstraint.json_schema({"type": "number"}), "NaN", "stop", "not valid JSON"),
        (OutputConstraint("json_object"), '{"a": [1]}', "stop", None),
        (OutputConstraint("json_object"), "[1]", "stop", "not a JSON object"),
        (OutputConstraint("regex", "[A-Z]{3}"), "ABC", "stop", None),
        (OutputConstraint("regex", "[A-Z]{3}"), "ABCD", "stop", "does not match the regex"),
        (OutputConstraint("choice", ("yes", "no")), "no", "stop", None),
        (OutputConstraint("choice", ("yes", "no")), "maybe", "stop", "not one of the choices"),
    ],
)
def test_output_problem(constraint: OutputConstraint, text: str, finish: str, problem: str | None) -> None:
    found = output_problem(constraint, text, finish)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found, found


def test_verdicts_are_cached_per_schema_text() -> None:
    from shared.structured import _schema_problem

    schema = {"type": "object", "properties": {"cached": {"type": "string", "maxLength": 3}}}
    bad = {"type": "object", "properties": {"cached": {"not": {}}}}
    before = _schema_problem.cache_info()
    for _ in range(5):
        check_schema(dict(schema))
        with pytest.raises(ValueError, match="unsupported keyword `not`"):
            check_schema(dict(bad))
    after = _schema_problem.cache_info()
    assert after.misses - before.misses == 2
    assert after.hits - before.hits == 8
