"""`EncoderClassifierSuite`: moderation, risk and sentiment over one shared sentence encoder.

Every request becomes a `(task, text)` item on one `MicroBatcher`; the batcher's thread embeds a
whole batch in one encoder forward pass (whatever the tasks) and runs each task's head on its rows.
Results are JSON-able dicts matching shared.schemas.ModerationResult / RiskResult / SentimentResult.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from shared.constants import TaskName
from shared.errors import ModelError, ModelNotPreparedError
from shared.settings import Settings
from workers.batching import BatcherClosedError, MicroBatcher

if TYPE_CHECKING:
    from workers.classifiers.encoder import SentenceEncoder
    from workers.classifiers.heads import HeadSet

__all__ = ["CLASSIFIER_TASKS", "EncoderClassifierSuite"]

log = structlog.get_logger(__name__)

#: The tasks a classifier suite serves (head names in the heads file are these values).
CLASSIFIER_TASKS: tuple[TaskName, ...] = (TaskName.MODERATE, TaskName.RISK, TaskName.SENTIMENT)

Item = tuple[TaskName, str]
Outcome = dict[str, Any] | ModelError

_WARMUP_TEXT = "textfleet warm-up: is this message fine?"


class EncoderClassifierSuite:
    """The ClassifierSuite of classify workers: thread-safe, batched across threads and tasks."""

    def __init__(
        self,
        encoder: SentenceEncoder,
        heads: HeadSet,
        settings: Settings,
        *,
        warmup: bool = True,
    ) -> None:
        missing = [task.value for task in CLASSIFIER_TASKS if task.value not in heads.specs]
        if missing:
            raise ModelNotPreparedError(
                f"the classifier heads lack {', '.join(missing)}; run `textfleet models prepare`"
            )
        if heads.dim != encoder.dim:
            raise ModelNotPreparedError(
                f"the classifier heads expect {heads.dim}-d embeddings but the encoder gives "
                f"{encoder.dim}-d ones; run `textfleet models prepare` for this encoder"
            )
        self.encoder = encoder
        self.heads = heads
        self.settings = settings
        self._thresholds = {
            label: settings.moderation_threshold(label)
            for label in heads.specs[TaskName.MODERATE.value].labels
        }
        if warmup:
            self._warm_up()
        self.batcher: MicroBatcher[Item, Outcome] = MicroBatcher(
            self._run_batch,
            max_batch=settings.classify_batch_size,
            max_wait_ms=settings.classify_max_wait_ms,
            name="classifier-batcher",
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> EncoderClassifierSuite:
        """Load the encoder and heads named by `settings` and warm them up.

        Raises ModelNotPreparedError (naming `textfleet models prepare`) when either is missing.
        """
        from workers.classifiers.encoder import SentenceEncoder
        from workers.classifiers.heads import HeadSet

        started = time.perf_counter()
        encoder_path = settings.encoder_model_path
        heads_path = Path(settings.heads_path).expanduser()
        heads = HeadSet.load(heads_path)  # cheap; fail on missing heads before loading the encoder
        trained_on = heads.meta.get("encoder")
        if trained_on is not None and trained_on != encoder_path:
            log.warning("classifiers.encoder_mismatch", heads_encoder=trained_on, encoder=encoder_path)
        encoder = SentenceEncoder.load(encoder_path, device=settings.classify_device)
        heads.to(encoder.device)
        suite = cls(encoder, heads, settings)
        log.info(
            "classifiers.ready",
            encoder=encoder_path,
            heads=str(heads_path),
            device=encoder.device,
            batch_size=settings.classify_batch_size,
            max_wait_ms=settings.classify_max_wait_ms,
            seconds=round(time.perf_counter() - started, 3),
        )
        return suite

    # --- ClassifierSuite ------------------------------------------------------------------------

    def classify(self, task: TaskName, text: str, timeout_s: float | None = None) -> dict[str, Any]:
        """The result of `task` for `text`; concurrent calls share forward passes. Raises ModelError."""
        task = _check_task(task)
        try:
            future = self.batcher.submit((task, text))
        except BatcherClosedError as exc:
            raise ModelError("the classifier suite is closed") from exc
        return _outcome(future, timeout_s)

    def classify_batch(self, task: TaskName, texts: list[str]) -> list[dict[str, Any]]:
        """Results for many texts, run through the batcher in batches of `classify_batch_size`."""
        task = _check_task(task)
        # Submit in length order so each batch pads to similar lengths; answer in input order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        try:
            futures = {i: self.batcher.submit((task, texts[i])) for i in order}
        except BatcherClosedError as exc:
            raise ModelError("the classifier suite is closed") from exc
        return [_outcome(futures[i]) for i in range(len(texts))]

    def close(self) -> None:
        """Finish what was submitted and stop the batching thread."""
        self.batcher.close()
        log.info("classifiers.closed", batches=self.batcher.stats.batches, items=self.batcher.stats.items)

    # --- The batch function (runs on the batcher's thread) --------------------------------------

    def _run_batch(self, items: list[Item]) -> list[Outcome]:
        try:
            return self._classify_items(items)
        except Exception as exc:
            if len(items) == 1:
                log.warning("classifiers.item_failed", task=items[0][0].value, error=repr(exc))
                return [_as_model_error(exc)]
            # Find the culprit: run each item alone so one bad input fails only its own job.
            log.warning("classifiers.batch_failed", size=len(items), error=repr(exc))
            return [self._run_batch([item])[0] for item in items]

    def _classify_items(self, items: list[Item]) -> list[Outcome]:
        started = time.perf_counter()
        embeddings = self.encoder.encode([text for _, text in items])
        out: list[Outcome | None] = [None] * len(items)
        for task in CLASSIFIER_TASKS:
            rows = [i for i, (item_task, _) in enumerate(items) if item_task == task]
            if not rows:
                continue
            probs = self.heads.probabilities(task.value, embeddings[rows]).to("cpu").tolist()
            for row, values in zip(rows, probs, strict=True):
                out[row] = self._result(task, values)
        log.debug(
            "classifiers.batch",
            size=len(items),
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return [outcome if outcome is not None else ModelError("no result") for outcome in out]

    def _result(self, task: TaskName, values: list[float]) -> dict[str, Any]:
        labels = self.heads.specs[task.value].labels
        scores = {label: _unit(value) for label, value in zip(labels, values, strict=True)}
        if task is TaskName.MODERATE:
            categories = {label: scores[label] >= self._thresholds[label] for label in labels}
            return {"flagged": any(categories.values()), "categories": categories, "category_scores": scores}
        if task is TaskName.RISK:
            score = max(scores.values(), default=0.0)
            if score >= self.settings.risk_high_threshold:
                level = "high"
            elif score >= self.settings.risk_medium_threshold:
                level = "medium"
            else:
                level = "low"
            return {"score": score, "level": level, "labels": scores}
        total = sum(scores.values()) or 1.0
        scores = {label: value / total for label, value in scores.items()}
        return {"label": max(scores, key=lambda label: scores[label]), "scores": scores}

    def _warm_up(self) -> None:
        started = time.perf_counter()
        self._classify_items([(task, _WARMUP_TEXT) for task in CLASSIFIER_TASKS])
        log.info("classifiers.warmed_up", ms=round((time.perf_counter() - started) * 1000, 2))


def _check_task(task: TaskName | str) -> TaskName:
    try:
        value = TaskName(task)
    except ValueError:
        value = None
    if value not in CLASSIFIER_TASKS:
        raise ModelError(f"{task!r} is not a classifier task (moderate, risk or sentiment)")
    assert value is not None
    return value


def _unit(value: float) -> float:
    """A probability as a plain float clamped to [0, 1] (guards against rounding outside it)."""
    return min(1.0, max(0.0, float(value)))


def _as_model_error(exc: Exception) -> ModelError:
    return exc if isinstance(exc, ModelError) else ModelError(f"classification failed: {exc}")


def _outcome(future: Future[Outcome], timeout_s: float | None = None) -> dict[str, Any]:
    """A classification's result, or the ModelError that explains why there is none."""
    try:
        outcome = future.result(timeout=timeout_s)
    except FutureTimeoutError as exc:
        future.cancel()
        raise ModelError(f"classification did not finish within {timeout_s}s", code="timeout") from exc
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"classification failed: {exc}") from exc
    if isinstance(outcome, ModelError):
        raise outcome
    return outcome
