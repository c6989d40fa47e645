"""Held-out quality of the seed-trained heads on labeled public data (../shared/data).

Neither data set is used for training (the heads learn only from workers/classifiers/seeds.py), so
these are honest held-out numbers. Each check uses a fixed sample: `random.Random(0).sample(rows, 500)`
over the file's rows in order. Skipped when the data is absent locally; fails under CI=true.

Measured when written (all-MiniLM-L6-v2, CPU): Davidson max(harassment, hate) ROC-AUC 0.80
(hate or offensive vs neither), SMS spam risk-score ROC-AUC 0.95.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from shared.constants import TaskName
from shared.settings import Settings
from tests.workers.classifiers.conftest import DATA_DIR, missing
from workers.classifiers.suite import EncoderClassifierSuite

pytestmark = pytest.mark.models

SAMPLE_SIZE = 500
SAMPLE_SEED = 0


def roc_auc(scores: list[float], labels: list[int]) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties get their average rank)."""
    s = torch.tensor(scores, dtype=torch.float64)
    y = torch.tensor(labels, dtype=torch.bool)
    n_pos = int(y.sum())
    n_neg = len(labels) - n_pos
    assert n_pos > 0
    assert n_neg > 0
    _, inverse, counts = torch.unique(s, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).to(torch.float64)
    average_rank = ends - (counts.to(torch.float64) - 1) / 2  # 1-based average rank of each value
    ranks = average_rank[inverse]
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def test_roc_auc_helper() -> None:
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert roc_auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert roc_auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75


def _rows(name: str, delimiter: str = ",") -> list[dict[str, str]]:
    path = DATA_DIR / name
    if not path.is_file():
        missing(f"labeled data {path.resolve()} is absent (the shared/ folder beside the checkout)")
    with Path(path).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


@pytest.fixture(scope="module")
def suite(classifier_settings: Settings) -> Iterator[EncoderClassifierSuite]:
    suite = EncoderClassifierSuite.from_settings(classifier_settings)
    yield suite
    suite.close()


def test_davidson_hate_and_offensive_vs_neither(suite: EncoderClassifierSuite) -> None:
    rows = random.Random(SAMPLE_SEED).sample(_rows("davidson_labeled_data.csv"), SAMPLE_SIZE)
    labels = [0 if row["class"] == "2" else 1 for row in rows]  # 0 hate, 1 offensive, 2 neither
    results = suite.classify_batch(TaskName.MODERATE, [row["tweet"] for row in rows])
    scores = [max(r["category_scores"]["harassment"], r["category_scores"]["hate"]) for r in results]
    auc = roc_auc(scores, labels)
    flagged_auc = roc_auc([float(r["flagged"]) for r in results], labels)
    print(f"davidson: max(harassment, hate) ROC-AUC {auc:.3f}, flagged ROC-AUC {flagged_auc:.3f}")
    assert auc > 0.72
    assert flagged_auc > 0.6


def test_sms_spam_risk(suite: EncoderClassifierSuite) -> None:
    rows = random.Random(SAMPLE_SEED).sample(_rows("sms_spam_collection.tsv", delimiter="\t"), SAMPLE_SIZE)
    labels = [1 if row["Label"] == "spam" else 0 for row in rows]
    results = suite.classify_batch(TaskName.RISK, [row["SMS"] for row in rows])
    auc = roc_auc([r["score"] for r in results], labels)
    ham_low = sum(r["level"] == "low" for r, y in zip(results, labels, strict=True) if y == 0) / labels.count(
        0
    )
    print(f"sms spam: risk score ROC-AUC {auc:.3f}, ham rated low {ham_low:.2%}")
    assert auc > 0.88
    assert ham_low > 0.8
