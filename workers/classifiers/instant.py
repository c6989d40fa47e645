"""`InstantClassifierSuite`: a classifier suite whose model costs nothing, to measure the fleet itself.

What a classify worker spends per job outside the model (claim, handler, result validation, finish,
announce, Celery and Redis) is the ceiling of the whole product once a GPU runs the model. This suite
answers every text at once with a fixed, schema-valid result (nothing flagged, risk low, sentiment
neutral, no entities), but each request still travels the `MicroBatcher` as in
`EncoderClassifierSuite`, so everything but the forward pass is the real path.

It is selected only explicitly: `textfleet worker --instant-classifiers` (what `textfleet bench
--scenario overhead` starts), never by a setting, and `workers.runtime.load_runtime` refuses it when
`environment=production`. Importing it imports no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any

from shared.constants import TaskName
from shared.errors import ModelError
from shared.settings import MODERATION_CATEGORIES, Settings
from workers.batching import BatcherClosedError, MicroBatcher
from workers.classifiers.heads import RISK_LABELS, SENTIMENT_LABELS

__all__ = ["InstantClassifierSuite", "instant_results"]

_ENTITIES = TaskName("entities")


def instant_results(settings: Settings) -> dict[TaskName, Callable[[], dict[str, Any]]]:
    """Per classifier task, a builder of its fixed result (a fresh object per call: a handler may keep
    or change what it gets)."""
    thresholds = {name: settings.moderation_threshold(name) for name in MODERATION_CATEGORIES}

    def moderate() -> dict[str, Any]:
        return {
            "flagged": False,
            "categories": dict.fromkeys(MODERATION_CATEGORIES, False),
            "category_scores": dict.fromkeys(MODERATION_CATEGORIES, 0.0),
            "thresholds": dict(thresholds),
        }

    def risk() -> dict[str, Any]:
        return {"score": 0.0, "level": "low", "labels": dict.fromkeys(RISK_LABELS, 0.0)}

    def sentiment() -> dict[str, Any]:
        scores = dict.fromkeys(SENTIMENT_LABELS, 0.0)
        scores["neutral"] = 1.0
        return {"label": "neutral", "scores": scores}

    def entities() -> dict[str, Any]:
        return {"entities": []}

    return {
        TaskName("moderate"): moderate,
        TaskName("risk"): risk,
        TaskName("sentiment"): sentiment,
        _ENTITIES: entities,
    }


class InstantClassifierSuite:
    """A `ClassifierSuite` with no model: batched like the real one, every answer fixed and instant."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._results = instant_results(settings)
        self.batcher: MicroBatcher[TaskName, dict[str, Any]] = MicroBatcher(
            self._run_batch,
            max_batch=settings.classify_batch_size,
            max_wait_ms=settings.classify_max_wait_ms,
            name="instant-classifier-batcher",
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> InstantClassifierSuite:
        return cls(settings)

    def classify(
        self, task: TaskName, text: str, timeout_s: float | None = None, *, model: str | None = None
    ) -> dict[str, Any]:
        """The fixed result of `task`, through the batcher. Custom models: ModelError (none exist)."""
        task = self._check(task)
        if model is not None:
            raise ModelError("the instant classifiers serve no custom models", code="unknown_model")
        try:
            future = self.batcher.submit(task)
        except BatcherClosedError as exc:
            raise ModelError("the classifier suite is closed") from exc
        return _outcome(future, timeout_s)

    def classify_batch(self, task: TaskName, texts: list[str]) -> list[dict[str, Any]]:
        task = self._check(task)
        try:
            futures = [self.batcher.submit(task) for _ in texts]
        except BatcherClosedError as exc:
            raise ModelError("the classifier suite is closed") from exc
        return [_outcome(future) for future in futures]

    def close(self) -> None:
        self.batcher.close()

    def _check(self, task: TaskName | str) -> TaskName:
        try:
            value = TaskName(task)
        except ValueError:
            value = None
        if value is None or value not in self._results:
            raise ModelError(f"{task!r} is not a classifier task ({', '.join(self._results)})")
        return value

    def _run_batch(self, tasks: list[TaskName]) -> list[dict[str, Any]]:
        return [self._results[task]() for task in tasks]


def _outcome(future: Future[dict[str, Any]], timeout_s: float | None = None) -> dict[str, Any]:
    try:
        return future.result(timeout=timeout_s)
    except FutureTimeoutError as exc:
        future.cancel()
        raise ModelError(f"classification did not finish within {timeout_s}s", code="timeout") from exc
