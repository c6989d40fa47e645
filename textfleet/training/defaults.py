"""The default heads (moderate, risk, sentiment): trained from `../shared/data`, shipped in the repo.

`train_defaults` rebuilds `DEFAULTS_DIR/<task>/` (weights, head.json, metrics.json, MODEL_CARD.md)
from the data sets whose license allows a shipped model; `textfleet models prepare` copies them
into the models directory (`textfleet.models.heads.prepare_heads`). `make models-train` runs this.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import workers.classifiers
from textfleet.training.cards import write_card
from textfleet.training.corpora import LICENSES, Example, corpus
from textfleet.training.pipeline import FeatureSource, fit_and_measure
from textfleet.training.train import TrainConfig
from workers.classifiers.features import FeatureSpec
from workers.classifiers.heads import HeadSpec, head_specs

__all__ = ["DEFAULTS_DIR", "DEFAULT_FEATURES", "DEFAULT_TASKS", "default_spec", "train_defaults"]

#: Where the shipped heads live: package data of `workers.classifiers` (the heads a worker runs),
#: copied to the models directory at prepare time.
DEFAULTS_DIR = Path(workers.classifiers.__file__).with_name("defaults")
#: The default tasks, in training order.
DEFAULT_TASKS: tuple[str, ...] = ("moderate", "risk", "sentiment")
#: Hidden states the default heads read: the mean-pooled states of the last three layers, each
#: normalised, concatenated. On the moderation val/test splits this measured any-category AUPRC
#: 0.958/0.956 against 0.949/0.946 for the last layer alone (the sentence-transformers embedding).
DEFAULT_FEATURES = FeatureSpec((4, 5, 6))
#: Hidden width of the default heads.
DEFAULT_HIDDEN = 256

Say = Callable[[str], None]


def default_spec(task: str) -> HeadSpec:
    """The spec of a default head: the contract's labels with the default features and width."""
    base = head_specs()[task]
    return HeadSpec(base.name, base.kind, base.labels, DEFAULT_HIDDEN, DEFAULT_FEATURES)


def shippable(examples: list[Example]) -> list[Example]:
    """The examples whose source license allows a shipped model."""
    return [e for e in examples if LICENSES.get(e.source, ("", False))[1]]


def train_defaults(
    data_dir: Path,
    source: FeatureSource,
    *,
    out_dir: Path = DEFAULTS_DIR,
    tasks: tuple[str, ...] = DEFAULT_TASKS,
    config: TrainConfig | None = None,
    say: Say | None = None,
    epoch_progress: Callable[[int, int, str], None] | None = None,
    embed_progress: Callable[[int, int], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Train every default head from `data_dir` into `out_dir/<task>`; returns each task's metrics."""
    config = config or TrainConfig()
    results: dict[str, dict[str, Any]] = {}
    for task in tasks:
        examples = shippable(corpus(task, data_dir))
        spec = default_spec(task)
        target = out_dir / task
        meta = {
            "name": task,
            "trained_on": sorted({e.source for e in examples}),
            "licenses": {s: LICENSES[s][0] for s in sorted({e.source for e in examples})},
        }
        head, metrics = fit_and_measure(
            spec,
            examples,
            source,
            target,
            config=config,
            meta=meta,
            say=say,
            epoch_progress=epoch_progress,
            embed_progress=embed_progress,
        )
        write_card(target, head, metrics)
        results[task] = metrics
    return results
