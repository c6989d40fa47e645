"""`EncoderClassifierSuite`: moderation, risk, sentiment and entities over one shared encoder.

Every request becomes a `(task, text, head)` item on one `MicroBatcher`; the batcher's thread
embeds a whole batch in one encoder forward pass (pooling every layer any head of the batch reads,
whatever the tasks) and runs each head on its rows. Results are JSON-able dicts matching
shared.schemas.ModerationResult / RiskResult / SentimentResult. A moderation request may name a
custom model (`textfleet train`, registered under `models_dir/custom/<name>`): it is loaded on first
use and stays warm (`registry.ModelRegistry`). An `entities` request goes into the same batches as
token windows (`ner.EntityRecognizer`): the one forward pass pools the sentence rows and keeps the
per-token states of the window rows.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import structlog

from shared.constants import TaskName
from shared.errors import ModelError, ModelNotPreparedError
from shared.logging import error_fields
from shared.settings import Settings
from shared.tasks import TASKS, Engine
from workers.batching import BatcherClosedError, MicroBatcher
from workers.classifiers.registry import ModelRegistry

if TYPE_CHECKING:
    import torch

    from workers.classifiers.encoder import SentenceEncoder
    from workers.classifiers.heads import Head, HeadSet
    from workers.classifiers.ner import EntityRecognizer
    from workers.classifiers.ner_head import EntityHead

__all__ = ["CLASSIFIER_TASKS", "SENTENCE_TASKS", "EncoderClassifierSuite"]

log = structlog.get_logger(__name__)

#: The tasks a classifier suite serves: the registry's classifier tasks (head names in the heads file
#: are these values).
CLASSIFIER_TASKS: tuple[TaskName, ...] = tuple(TaskName(name) for name in TASKS.by_engine(Engine.CLASSIFIER))
_MODERATE = TaskName("moderate")
_RISK = TaskName("risk")
_ENTITIES = TaskName("entities")
#: The tasks answered by a sentence head (`entities` is answered by the entity head).
SENTENCE_TASKS: tuple[TaskName, ...] = tuple(task for task in CLASSIFIER_TASKS if task is not _ENTITIES)

Item = tuple[TaskName, str, "Head | EntityHead"]
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
        entities: EntityRecognizer | None = None,
        warmup: bool = True,
    ) -> None:
        missing = [task.value for task in SENTENCE_TASKS if task.value not in heads.specs]
        if missing:
            raise ModelNotPreparedError(
                f"the classifier heads lack {', '.join(missing)}; run `textfleet models prepare`"
            )
        for head in heads.heads.values():
            expected = head.spec.features.dim(encoder.dim)
            if head.dim != expected:
                raise ModelNotPreparedError(
                    f"the {head.spec.name} head expects {head.dim}-d features but the encoder gives "
                    f"{expected}-d ones; run `textfleet models prepare` for this encoder"
                )
        self.encoder = encoder
        self.heads = heads
        self.entities = entities
        self.settings = settings
        self.registry = ModelRegistry(Path(settings.models_dir).expanduser(), encoder)
        moderation = heads.heads[_MODERATE.value]
        self._thresholds = {
            label: settings.moderation_thresholds.get(
                label, moderation.thresholds.get(label, settings.moderation_default_threshold)
            )
            for label in moderation.spec.labels
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
        for head in heads.heads.values():
            trained_on = head.meta.get("encoder")
            if trained_on is not None and trained_on != Path(encoder_path).name:
                log.warning("classifiers.encoder_mismatch", heads_encoder=trained_on, encoder=encoder_path)
        encoder = SentenceEncoder.load(encoder_path, device=settings.classify_device)
        heads.to(encoder.device)
        suite = cls(encoder, heads, settings, entities=_entity_recognizer(heads_path, encoder))
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

    def classify(
        self, task: TaskName, text: str, timeout_s: float | None = None, *, model: str | None = None
    ) -> dict[str, Any]:
        """The result of `task` for `text`; concurrent calls share forward passes. Raises ModelError.

        `model` names a custom moderation model (raises UnknownModelError when there is none)."""
        task = _check_task(task)
        head = self._head(task, model)
        try:
            future = self.batcher.submit((task, text, head))
        except BatcherClosedError as exc:
            raise ModelError("the classifier suite is closed") from exc
        return _outcome(future, timeout_s)

    def classify_batch(self, task: TaskName, texts: list[str]) -> list[dict[str, Any]]:
        """Results for many texts, run through the batcher in batches of `classify_batch_size`."""
        task = _check_task(task)
        # Submit in length order so each batch pads to similar lengths; answer in input order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        head = self._head(task, None)
        try:
            futures = {i: self.batcher.submit((task, texts[i], head)) for i in order}
        except BatcherClosedError as exc:
            raise ModelError("the classifier suite is closed") from exc
        return [_outcome(futures[i]) for i in range(len(texts))]

    def close(self) -> None:
        """Finish what was submitted and stop the batching thread."""
        self.batcher.close()
        log.info("classifiers.closed", batches=self.batcher.stats.batches, items=self.batcher.stats.items)

    def _head(self, task: TaskName, model: str | None) -> Head | EntityHead:
        if task is _ENTITIES:
            if self.entities is None:
                raise ModelError(
                    "the entity head is not prepared; run `textfleet models prepare`",
                    code="model_not_prepared",
                )
            return self.entities.head
        if model is None:
            return self.heads.heads[task.value]
        if task is not _MODERATE:
            raise ModelError(
                f"custom models serve the moderate task, not {task.value}", code="invalid_params"
            )
        return self.registry.get(model)

    # --- The batch function (runs on the batcher's thread) --------------------------------------

    def _run_batch(self, items: list[Item]) -> list[Outcome]:
        try:
            return self._classify_items(items)
        except Exception as exc:
            if len(items) == 1:
                log.warning("classifiers.item_failed", task=items[0][0].value, **error_fields(exc))
                return [_as_model_error(exc)]
            # Find the culprit: run each item alone so one bad input fails only its own job.
            log.warning("classifiers.batch_failed", size=len(items), **error_fields(exc))
            return [self._run_batch([item])[0] for item in items]

    def _classify_items(self, items: list[Item]) -> list[Outcome]:
        started = time.perf_counter()
        sentence_rows = [i for i, (task, _, _) in enumerate(items) if task is not _ENTITIES]
        entity_rows = [i for i, (task, _, _) in enumerate(items) if task is _ENTITIES]
        heads = {id(items[i][2]): cast("Head", items[i][2]) for i in sentence_rows}
        total = self.encoder.layer_count
        layers = tuple(sorted({i % total for head in heads.values() for i in head.spec.features.layers}))
        prepared = [self.entities.prepare(items[i][1]) for i in entity_rows] if self.entities else []
        token_layers = self.entities.layers if self.entities else ()
        windows = [ids for p in prepared for ids in p.window_ids]
        states, token_states = self.encoder.encode_rows(
            [items[i][1] for i in sentence_rows], windows, layers, token_layers
        )
        out: list[Outcome | None] = [None] * len(items)
        for key, head in heads.items():
            rows = [j for j, i in enumerate(sentence_rows) if id(items[i][2]) == key]
            wanted = [layers.index(i % total) for i in head.spec.features.layers]
            features = _features(states[rows], wanted)
            probs = head.probabilities(features).to("cpu").tolist()
            for row, values in zip(rows, probs, strict=True):
                item = sentence_rows[row]
                out[item] = self._result(items[item][0], head, values)
        at = 0
        for i, prep in zip(entity_rows, prepared, strict=True):
            assert self.entities is not None
            out[i] = self.entities.result(prep, token_states[at : at + len(prep.windows)])
            at += len(prep.windows)
        log.debug(
            "classifiers.batch",
            size=len(items),
            windows=len(windows),
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return [outcome if outcome is not None else ModelError("no result") for outcome in out]

    def _result(self, task: TaskName, head: Head, values: list[float]) -> dict[str, Any]:
        labels = head.spec.labels
        scores = {label: _unit(value) for label, value in zip(labels, values, strict=True)}
        if task is _MODERATE:
            if head is self.heads.heads[task.value]:
                thresholds = self._thresholds
            else:
                thresholds = {label: head.thresholds.get(label, 0.5) for label in labels}
            categories = {label: scores[label] >= thresholds[label] for label in labels}
            return {
                "flagged": any(categories.values()),
                "categories": categories,
                "category_scores": scores,
                "thresholds": dict(thresholds),
            }
        if task is _RISK:
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
        items: list[Item] = [(task, _WARMUP_TEXT, self.heads.heads[task.value]) for task in SENTENCE_TASKS]
        if self.entities is not None:
            items.append((_ENTITIES, _WARMUP_TEXT, self.entities.head))
        self._classify_items(items)
        log.info("classifiers.warmed_up", ms=round((time.perf_counter() - started) * 1000, 2))


def _check_task(task: TaskName | str) -> TaskName:
    try:
        value = TaskName(task)
    except ValueError:
        value = None
    if value not in CLASSIFIER_TASKS:
        known = ", ".join(CLASSIFIER_TASKS)
        raise ModelError(f"{task!r} is not a classifier task ({known})")
    assert value is not None
    return value


def _entity_recognizer(heads_path: Path, encoder: SentenceEncoder) -> EntityRecognizer | None:
    """The entity recognizer over `encoder`, or None (entities jobs then fail naming the fix) when
    the heads directory was prepared before the entity head shipped."""
    from workers.classifiers.ner import EntityRecognizer
    from workers.classifiers.ner_head import ENTITY_HEAD_DIR, EntityHead

    try:
        head = EntityHead.load(heads_path / ENTITY_HEAD_DIR, device=encoder.device)
    except ModelNotPreparedError as exc:
        log.warning("classifiers.no_entity_head", error=str(exc))
        return None
    return EntityRecognizer(head, encoder.tokenizer, max_length=encoder.max_length)


def _features(states: torch.Tensor, wanted: list[int]) -> torch.Tensor:
    """A head's input from pooled states (n, layers, dim): the `wanted` ones, normalised, concatenated
    (as `features.combine` does in training)."""
    import torch

    chosen = torch.nn.functional.normalize(states[:, wanted, :], p=2.0, dim=2)
    return chosen.reshape(chosen.shape[0], -1)


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
