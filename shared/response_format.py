"""`response_format` of a `generate` job: OpenAI's shape, plus vLLM's regex and choice constraints.

    {"type": "text"}                                              no constraint (the default)
    {"type": "json_object"}                                       any JSON object
    {"type": "json_schema", "json_schema": {"name", "schema", "strict"?, "description"?}}
    {"type": "regex", "regex": "[A-Z]{3}-[0-9]{4}"}               the whole output matches the regex
    {"type": "choice", "choice": ["yes", "no"]}                   the output is one of the strings

One flat model (not a tagged union) so a bad field is reported at its own path, e.g.
`params.response_format.json_schema.schema`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from shared.constraints import OutputConstraint
from shared.structured import check_regex, check_schema

__all__ = ["JsonSchema", "JsonSchemaSpec", "ResponseFormat"]

#: A JSON Schema within the subset the decoder enforces (see shared.structured.check_schema).
JsonSchema = Annotated[dict[str, Any], AfterValidator(check_schema)]


def _unique(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("choices must be distinct")
    return values


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class JsonSchemaSpec(_Strict):
    """OpenAI's `json_schema` object. Output is always constrained, whatever `strict` says."""

    model_config = ConfigDict(
        extra="forbid", strict=True, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    description: Annotated[str, Field(max_length=2000)] | None = None
    schema_: JsonSchema = Field(alias="schema", description="The JSON Schema the output must match.")
    strict: bool | None = None


class ResponseFormat(_Strict):
    """What a generation's output must look like (see the module docstring)."""

    type: Literal["text", "json_object", "json_schema", "regex", "choice"]
    json_schema: JsonSchemaSpec | None = None
    regex: Annotated[str, Field(min_length=1), AfterValidator(check_regex)] | None = None
    choice: (
        Annotated[
            list[Annotated[str, Field(min_length=1, max_length=512)]],
            Field(min_length=1, max_length=256),
            AfterValidator(_unique),
        ]
        | None
    ) = None

    @model_validator(mode="after")
    def _matches_type(self) -> ResponseFormat:
        given = {name for name in ("json_schema", "regex", "choice") if getattr(self, name) is not None}
        wanted = {self.type} & {"json_schema", "regex", "choice"}
        if wanted - given:
            raise ValueError(f"type {self.type!r} needs the `{self.type}` field")
        if given - wanted:
            extra = ", ".join(f"`{name}`" for name in sorted(given - wanted))
            raise ValueError(f"type {self.type!r} takes no {extra}")
        return self

    def constraint(self) -> OutputConstraint | None:
        """The decoding constraint, or None for plain text."""
        if self.type == "json_schema":
            assert self.json_schema is not None
            return OutputConstraint("json", self.json_schema.schema_)
        if self.type == "json_object":
            return OutputConstraint("json_object")
        if self.type == "regex":
            return OutputConstraint("regex", self.regex)
        if self.type == "choice":
            assert self.choice is not None
            return OutputConstraint("choice", tuple(self.choice))
        return None
