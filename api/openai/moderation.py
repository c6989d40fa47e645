"""`/v1/moderations`: one `moderate` job per input, reported in OpenAI's shape.

OpenAI's category names are mapped onto textfleet's moderation categories by one table, the data file
`moderation_categories.json` beside this module (its `_doc` says how): a category textfleet has no
head for, or that the scoring model did not score, is reported with score 0, not flagged, and an
empty `category_applied_input_types`. `flagged` is true when any reported category is.
"""

from __future__ import annotations

import json
from functools import cache, partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from api.openai.errors import validation_error
from api.openai.protocol import ModerationRequest, ModerationResponse, ModerationResultOut
from api.openai.service import INTERACTIVE_PRIORITY
from shared.schemas import JobOut, ModerateJobCreate

__all__ = ["CategoryMap", "category_map", "moderation_jobs", "moderation_response", "moderation_result"]

_TABLE = Path(__file__).with_name("moderation_categories.json")


class CategoryMap:
    """The table of `moderation_categories.json`."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.default_model: str = data["default_model"]
        self.aliases: frozenset[str] = frozenset(data["model_aliases"])
        self.categories: dict[str, str | None] = dict(data["categories"])

    def custom_model(self, model: str | None) -> str | None:
        """The custom model (`params.model`) a request's `model` names; None for the default head."""
        if model is None or model == self.default_model or model in self.aliases:
            return None
        return model


@cache
def category_map() -> CategoryMap:
    return CategoryMap(json.loads(_TABLE.read_text(encoding="utf-8")))


def _rename(where: tuple[Any, ...], loc: tuple[Any, ...]) -> tuple[Any, ...]:
    return where if loc[:1] == ("input",) else ("model",)


def moderation_jobs(request: ModerationRequest, ttl_s: float) -> list[ModerateJobCreate]:
    """One `moderate` job per input string (a 400 naming the input for one that cannot run)."""
    custom = category_map().custom_model(request.model)
    params: dict[str, Any] = {"ttl_s": ttl_s}
    if custom is not None:
        params["model"] = custom
    jobs = []
    for index, text in enumerate(request.texts()):
        raw = {
            "task": "moderate",
            "input": {"text": text},
            "params": params,
            "metadata": {"openai_endpoint": "moderations"},
            "priority": INTERACTIVE_PRIORITY,
        }
        try:
            jobs.append(ModerateJobCreate.model_validate(raw))
        except ValidationError as exc:
            where: tuple[Any, ...] = ("input",) if isinstance(request.input, str) else ("input", index)
            raise validation_error(exc, partial(_rename, where)) from None
    return jobs


def moderation_result(result: dict[str, Any], table: CategoryMap) -> ModerationResultOut:
    """A textfleet moderation result (`ModerationResult`) in OpenAI's shape."""
    flags: dict[str, bool] = result.get("categories", {})
    scores: dict[str, float] = result.get("category_scores", {})
    categories: dict[str, bool] = {}
    category_scores: dict[str, float] = {}
    applied: dict[str, list[Any]] = {}
    for name, source in table.categories.items():
        scored = source is not None and source in scores
        categories[name] = bool(flags.get(source, False)) if scored and source is not None else False
        category_scores[name] = float(scores[source]) if scored and source is not None else 0.0
        applied[name] = ["text"] if scored else []
    return ModerationResultOut(
        flagged=any(categories.values()),
        categories=categories,
        category_scores=category_scores,
        category_applied_input_types=applied,
    )


def moderation_response(jobs: list[JobOut], model: str | None) -> ModerationResponse:
    """The response of a moderation request whose jobs all succeeded; `model` is the one the request
    named (OpenAI's names are answered with the name of textfleet's default head that served them)."""
    table = category_map()
    results = []
    for job in jobs:
        assert job.result is not None, "a succeeded moderate job has a result"
        results.append(moderation_result(job.result, table))
    return ModerationResponse(
        id=f"modr-{jobs[0].id}", model=table.custom_model(model) or table.default_model, results=results
    )
