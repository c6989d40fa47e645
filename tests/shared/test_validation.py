"""The one place that refuses poison: every request model, every string and number, at any depth."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import JsonValue, ValidationError

from shared.schemas import JOB_CREATE_MODELS
from shared.validation import KEY, RequestModel, check_clean_str, find_poison, string_problem

GenerateJobCreate = JOB_CREATE_MODELS["generate"]
SentimentJobCreate = JOB_CREATE_MODELS["sentiment"]


class Inner(RequestModel):
    text: str


class Outer(RequestModel):
    inner: Inner
    items: list[Inner] = []
    extra: dict[str, JsonValue] = {}


def _locs(data: Any) -> list[tuple[Any, ...]]:
    return [loc for loc, _kind, _message in find_poison(data)]


@pytest.mark.parametrize(
    ("value", "bad"),
    [
        ("plain", False),
        ("héllo wörld ☃ 😀", False),  # non-ASCII, paired (a real code point): fine
        ("tab\tand\nnewline", False),
        ("nul\x00", True),
        ("\udfff", True),
        ("high \ud800 alone", True),
    ],
)
def test_string_problem(value: str, bad: bool) -> None:
    assert (string_problem(value) is not None) == bad
    if bad:
        with pytest.raises(ValueError, match="must not contain"):
            check_clean_str(value)


def test_find_poison_names_every_place_in_document_order() -> None:
    data = {
        "a": "ok",
        "b": ["x", "\x00", {"c": math.nan}],
        "bad\udfffkey": 1,
        "d": {"e": -math.inf, "f": 1.5, "g": 10**30},
    }
    assert _locs(data) == [("b", 1), ("b", 2, "c"), (KEY,), ("d", "e")]


def test_find_poison_walks_deep_input_without_recursion() -> None:
    deep: Any = "\x00"
    for _ in range(5000):
        deep = [deep]
    assert _locs(deep) == [(0,) * 5000]


def test_the_outermost_model_reports_full_paths() -> None:
    with pytest.raises(ValidationError) as caught:
        Outer.model_validate(
            {
                "inner": {"text": "a\x00"},
                "items": [{"text": "ok"}, {"text": "\udfff"}],
                "extra": {"n": math.inf},
            }
        )
    errors = caught.value.errors()
    assert [(e["loc"], e["type"]) for e in errors] == [
        (("inner", "text"), "invalid_characters"),
        (("items", 1, "text"), "invalid_characters"),
        (("extra", "n"), "finite_number"),
    ]
    assert all(e["input"] is None for e in errors)  # the value is never carried along


def test_valid_input_is_untouched_and_a_built_model_is_accepted_as_is() -> None:
    inner = Inner(text="fine")
    outer = Outer.model_validate({"inner": inner, "extra": {"k": [1, 2.5, None, "ü"]}})
    assert outer.inner is inner or outer.inner == inner
    assert outer.extra == {"k": [1, 2.5, None, "ü"]}


def test_job_models_use_it() -> None:
    with pytest.raises(ValidationError) as caught:
        GenerateJobCreate.model_validate(
            {"task": "generate", "input": {"prompt": "hi"}, "params": {"temperature": math.nan}}
        )
    assert caught.value.errors()[0]["loc"] == ("params", "temperature")


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://example.com/hook", True),
        ("https://user:pass@example.com/hook", False),
        ("https://user@example.com/hook", False),
        ("https://:secret@example.com/hook", False),
    ],
)
def test_webhook_urls_with_credentials_are_refused(url: str, ok: bool) -> None:
    body = {"task": "sentiment", "input": {"text": "hi"}, "webhook": url}
    if ok:
        assert str(SentimentJobCreate.model_validate(body).webhook) == url
    else:
        with pytest.raises(ValidationError, match="credentials"):
            SentimentJobCreate.model_validate(body)
