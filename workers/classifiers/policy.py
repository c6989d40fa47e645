"""Moderation as a policy: a request's `categories` and `thresholds` applied to a model's scores."""

from __future__ import annotations

from typing import Any

from shared.errors import InvalidInputError
from shared.schemas import ModerateParams

__all__ = ["apply_policy"]


def apply_policy(raw: dict[str, Any], params: ModerateParams) -> dict[str, Any]:
    """The moderation result for `params`: the chosen categories only, flagged by the request's
    thresholds where given (else the model's), with the raw scores and the thresholds applied.

    Raises InvalidInputError when the request names a category the model does not score."""
    scores: dict[str, float] = raw["category_scores"]
    thresholds: dict[str, float] = dict(raw.get("thresholds") or {})
    named = [*(params.categories or []), *(params.thresholds or {})]
    unknown = sorted(set(named) - set(scores))
    if unknown:
        raise InvalidInputError(
            f"the model does not score {unknown}; it scores {list(scores)}",
            field="params.categories" if set(unknown) & set(params.categories or []) else "params.thresholds",
        )
    thresholds.update(params.thresholds or {})
    chosen = list(params.categories) if params.categories else list(scores)
    applied = {name: float(thresholds.get(name, 0.5)) for name in chosen}
    categories = {name: scores[name] >= applied[name] for name in chosen}
    return {
        "flagged": any(categories.values()),
        "categories": categories,
        "category_scores": {name: scores[name] for name in chosen},
        "thresholds": applied,
    }
