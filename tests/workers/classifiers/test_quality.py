"""The shipped default heads: they load, score known examples sensibly, and keep their held-out
quality on fixed samples of the test split of ../shared/data (never used for training or tuning).

Floors sit a little below the values measured when the heads were trained (see each model card's
test figures and workers/classifiers/defaults/EVAL.md); a retrained head that falls below them
is a regression. Sample: `random.Random(0).sample(test_rows, SAMPLE_SIZE)`. The data checks are
skipped when ../shared/data is absent locally and fail under CI=true.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from shared.constants import TaskName
from shared.settings import Settings
from tests.workers.classifiers.conftest import DATA_DIR, missing
from textfleet.training.corpora import Example, corpus, split_of
from textfleet.training.defaults import shippable
from workers.classifiers.suite import EncoderClassifierSuite

pytestmark = pytest.mark.models

SAMPLE_SIZE = 600
DEMO_POSITIVE = "The support team was fantastic and fixed my problem in minutes."


@pytest.fixture(scope="module")
def suite(classifier_settings: Settings) -> Iterator[EncoderClassifierSuite]:
    suite = EncoderClassifierSuite.from_settings(classifier_settings)
    yield suite
    suite.close()


def _test_sample(task: str, source: str) -> list[Example]:
    if not DATA_DIR.is_dir():
        missing(f"labeled data {DATA_DIR.resolve()} is absent (the shared/ folder beside the checkout)")
    rows = [
        e for e in shippable(corpus(task, DATA_DIR)) if e.source == source and split_of(e.group) == "test"
    ]
    return random.Random(0).sample(rows, min(SAMPLE_SIZE, len(rows)))


def test_demo_sentence_is_clearly_positive(suite: EncoderClassifierSuite) -> None:
    result = suite.classify(TaskName.SENTIMENT, DEMO_POSITIVE)
    assert result["label"] == "positive"
    assert result["scores"]["positive"] >= 0.8


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("I will find you and hurt you, you worthless idiot.", "harassment"),
        ("I'm going to kill myself tonight, I have the pills ready.", "self-harm/intent"),
        ("all of those immigrants are vermin and should be thrown out", "hate"),
    ],
)
def test_harmful_text_is_flagged_in_its_category(
    suite: EncoderClassifierSuite, text: str, category: str
) -> None:
    result = suite.classify(TaskName.MODERATE, text)
    assert result["flagged"] is True
    assert result["categories"][category] is True, result["category_scores"]


def test_ordinary_text_is_not_flagged(suite: EncoderClassifierSuite) -> None:
    for text in (
        "Can you pick up some bread on your way home? Dinner is at seven.",
        "The quarterly report is attached; let me know if the numbers look right.",
        DEMO_POSITIVE,
    ):
        result = suite.classify(TaskName.MODERATE, text)
        assert result["flagged"] is False, (text, result["category_scores"])


def test_moderation_test_split_davidson(suite: EncoderClassifierSuite) -> None:
    sample = _test_sample("moderate", "davidson")
    results = suite.classify_batch(TaskName.MODERATE, [e.text for e in sample])
    truth = [int(any(e.labels.values())) for e in sample]
    score = [max(r["category_scores"]["harassment"], r["category_scores"]["hate"]) for r in results]
    assert average_precision_score(truth, score) >= 0.95
    assert roc_auc_score(truth, score) >= 0.90


def test_self_harm_test_split_reddit(suite: EncoderClassifierSuite) -> None:
    """At-risk Reddit posts against ordinary messages. (Within the Reddit set, posts of users rated
    Supportive against those of at-risk users, the head does not discriminate: AUROC ~0.5, see
    the model card. The labels are per user, not per post.)"""
    at_risk = [e for e in _test_sample("moderate", "reddit_cssrs") if e.labels["self-harm"]][:200]
    ordinary = _test_sample("moderate", "sms_spam")[:200]
    results = suite.classify_batch(TaskName.MODERATE, [e.text for e in [*at_risk, *ordinary]])
    truth = [1] * len(at_risk) + [0] * len(ordinary)
    score = [r["category_scores"]["self-harm"] for r in results]
    assert roc_auc_score(truth, score) >= 0.95


def test_risk_test_split_sms(suite: EncoderClassifierSuite) -> None:
    sample = _test_sample("risk", "sms_spam")
    results = suite.classify_batch(TaskName.RISK, [e.text for e in sample])
    truth = [int(e.labels.get("fraud_scam", 0.0)) for e in sample]
    score = [r["labels"]["fraud_scam"] for r in results]
    assert average_precision_score(truth, score) >= 0.85


def test_sentiment_test_split_tweets(suite: EncoderClassifierSuite) -> None:
    sample = _test_sample("sentiment", "tweeteval_sentiment")
    results = suite.classify_batch(TaskName.SENTIMENT, [e.text for e in sample])
    truth = [max(e.labels, key=lambda k: e.labels[k]) for e in sample]
    predicted = [r["label"] for r in results]
    assert f1_score(truth, predicted, average="macro") >= 0.60
    assert np.mean([t == p for t, p in zip(truth, predicted, strict=True)]) >= 0.60
