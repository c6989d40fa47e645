"""Moderation policy: request params (categories, thresholds, model) and how they apply to scores."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shared.errors import InvalidInputError
from shared.schemas import ModerateParams, ModerationResult, parse_job_payload
from workers.classifiers.policy import apply_policy

RAW: dict[str, Any] = {
    "flagged": True,
    "categories": {"harassment": True, "hate": False, "violence": False},
    "category_scores": {"harassment": 0.7, "hate": 0.2, "violence": 0.4},
    "thresholds": {"harassment": 0.6, "hate": 0.5, "violence": 0.5},
}


def test_no_params_keeps_the_model_thresholds() -> None:
    result = apply_policy(RAW, ModerateParams())
    assert result["flagged"] is True
    assert result["categories"] == {"harassment": True, "hate": False, "violence": False}
    assert result["thresholds"] == RAW["thresholds"]
    ModerationResult.model_validate(result)


def test_thresholds_and_categories_apply() -> None:
    params = ModerateParams(categories=["hate", "violence"], thresholds={"violence": 0.3})
    result = apply_policy(RAW, params)
    assert list(result["category_scores"]) == ["hate", "violence"]
    assert result["categories"] == {"hate": False, "violence": True}
    assert result["thresholds"] == {"hate": 0.5, "violence": 0.3}
    assert result["flagged"] is True
    relaxed = apply_policy(RAW, ModerateParams(thresholds={"harassment": 0.9}))
    assert relaxed["flagged"] is False


def test_category_the_model_lacks_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="does not score") as caught:
        apply_policy(RAW, ModerateParams(model="mine", categories=["spam"]))
    assert caught.value.field == "params.categories"


@pytest.mark.parametrize(
    "params",
    [
        {"categories": ["sexy"]},
        {"thresholds": {"hate": 1.5}},
        {"thresholds": {"nope": 0.5}},
        {"model": "Bad Name!"},
        {"categories": []},
        {"colour": "red"},
    ],
)
def test_bad_params_are_rejected_by_the_contract(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ModerateParams.model_validate(params)


def test_workers_parse_moderation_params() -> None:
    _, params = parse_job_payload(
        "moderate", {"text": "hi"}, {"thresholds": {"hate": 0.2}, "model": "my-model"}
    )
    assert isinstance(params, ModerateParams)
    assert params.thresholds == {"hate": 0.2}
    assert params.model == "my-model"
