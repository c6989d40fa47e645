"""From labelled examples to a measured model directory: split, features, train, measure, write.

Used by `textfleet train` for the defaults (`defaults.py`, from `../shared/data`) and for a user's
own labelled CSV/JSONL file (`userdata.py`). The split is `corpora.split_of` (fixed, salted hash of
each example's group); features come through an `EmbeddingCache`, so a second run embeds nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from textfleet.training.corpora import Example, split_of
from textfleet.training.metrics import label_metrics, multiclass_metrics
from textfleet.training.train import TrainConfig, predict, train_head
from workers.classifiers.features import EmbeddingCache, combine
from workers.classifiers.heads import Head, HeadSpec

if TYPE_CHECKING:
    from workers.classifiers.encoder import SentenceEncoder

__all__ = ["Dataset", "FeatureSource", "fit_and_measure", "measure", "targets"]

Say = Callable[[str], None]


def targets(examples: Sequence[Example], labels: tuple[str, ...]) -> np.ndarray:
    """(n, labels) float array: 1/0 for known labels, NaN for unknown ones."""
    y = np.full((len(examples), len(labels)), np.nan, dtype=np.float32)
    column = {label: j for j, label in enumerate(labels)}
    for i, example in enumerate(examples):
        for label, value in example.labels.items():
            if label in column:
                y[i, column[label]] = value
    return y


@dataclass
class Dataset:
    """Examples of one split with their targets."""

    examples: list[Example]
    y: np.ndarray

    @classmethod
    def of(cls, examples: Sequence[Example], labels: tuple[str, ...], split: str | None = None) -> Dataset:
        """The examples of `split` (all when None) whose targets know at least one label."""
        chosen = [e for e in examples if split is None or split_of(e.group) == split]
        y = targets(chosen, labels)
        keep = ~np.isnan(y).all(axis=1)
        return cls([e for e, k in zip(chosen, keep, strict=True) if k], y[keep])


class FeatureSource:
    """Features of texts for heads: pooled encoder states from a cache, the encoder loaded lazily."""

    def __init__(self, encoder_path: str, cache_dir: Path, *, device: str = "cpu") -> None:
        self.encoder_path = encoder_path
        self.device = device
        self.cache = EmbeddingCache(cache_dir, Path(encoder_path).name)
        self._encoder: SentenceEncoder | None = None

    def encoder(self) -> SentenceEncoder:
        """The encoder (loaded on first use)."""
        if self._encoder is None:
            from workers.classifiers.encoder import SentenceEncoder

            self._encoder = SentenceEncoder.load(self.encoder_path, device=self.device)
        return self._encoder

    def features(
        self, spec: HeadSpec, texts: Sequence[str], progress: Callable[[int, int], None] | None = None
    ) -> np.ndarray:
        """The head input features of `texts` (embedding the ones not cached yet)."""
        return combine(self.cache.states(texts, self.encoder, progress=progress), spec.features)


def measure(head: Head, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """The figures of `head` on features `x` and targets `y`."""
    probs = predict(head, x)
    if head.spec.kind == "multiclass":
        return multiclass_metrics(y, probs, head.spec.labels)
    return label_metrics(y, probs, head.spec.labels, head.thresholds)


def _by_source(head: Head, data: Dataset, x: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sources = sorted({e.source for e in data.examples})
    for source in sources:
        rows = np.array([e.source == source for e in data.examples])
        if rows.sum() >= 20:
            out[source] = measure(head, x[rows], data.y[rows])
    return out


def fit_and_measure(
    spec: HeadSpec,
    examples: Sequence[Example],
    source: FeatureSource,
    out_dir: Path,
    *,
    config: TrainConfig | None = None,
    meta: dict[str, Any] | None = None,
    say: Say | None = None,
    epoch_progress: Callable[[int, int, str], None] | None = None,
    embed_progress: Callable[[int, int], None] | None = None,
) -> tuple[Head, dict[str, Any]]:
    """Split `examples`, train `spec` on train (early stopping and calibration on val), measure on
    val and test, and write the head and `metrics.json` to `out_dir`. Returns (head, metrics)."""
    config = config or TrainConfig()
    started = time.perf_counter()
    splits = {name: Dataset.of(examples, spec.labels, name) for name in ("train", "val", "test")}
    for name, data in splits.items():
        if not data.examples:
            raise ValueError(f"the {name} split is empty: {len(examples)} examples are too few to train on")
    if say:
        sizes = ", ".join(f"{name} {len(data.examples)}" for name, data in splits.items())
        say(f"{spec.name}: {sizes} examples; embedding")
    every = [e.text for data in splits.values() for e in data.examples]
    source.features(spec, every, embed_progress)  # embed everything once, with progress
    x = {name: source.features(spec, [e.text for e in data.examples]) for name, data in splits.items()}
    if say:
        say(f"{spec.name}: training on {x['train'].shape[1]}-d features")
    head = train_head(
        spec, (x["train"], splits["train"].y), (x["val"], splits["val"].y), config, progress=epoch_progress
    )
    metrics: dict[str, Any] = {
        "task": spec.name,
        "kind": spec.kind,
        "splits": {name: len(data.examples) for name, data in splits.items()},
        "val": measure(head, x["val"], splits["val"].y),
        "test": measure(head, x["test"], splits["test"].y),
        "test_by_source": _by_source(head, splits["test"], x["test"]),
        "sources": _source_counts(splits),
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    head.meta = {**head.meta, **(meta or {}), "encoder": Path(source.encoder_path).name}
    head.save(out_dir)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return head, metrics


def _source_counts(splits: dict[str, Dataset]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for name, data in splits.items():
        for example in data.examples:
            counts.setdefault(example.source, {}).setdefault(name, 0)
            counts[example.source][name] += 1
    return counts
