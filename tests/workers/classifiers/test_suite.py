"""EncoderClassifierSuite on the real encoder and trained heads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from shared.constants import TaskName
from shared.errors import ModelError, ModelNotPreparedError
from shared.schemas import ModerationResult, RiskResult, SentimentResult
from shared.settings import MODERATION_CATEGORIES, Settings
from workers.classifiers.base import ClassifierSuite
from workers.classifiers.heads import RISK_LABELS, head_specs
from workers.classifiers.suite import CLASSIFIER_TASKS, SENTENCE_TASKS, EncoderClassifierSuite

pytestmark = pytest.mark.models

BENIGN = "Can you pick up some bread on your way home? Dinner is at seven."
TOXIC = "Shut up you worthless idiot, I know where you live and I will beat you until you bleed."
SCAM = (
    "URGENT! You have won a £1,000 cash prize. To claim, call 09061790121 now or reply WIN. "
    "Claim code K52. T&Cs apply, 150p/msg."
)
HAM = "Sorry I missed your call, I was driving. I'll ring you back after dinner."


@pytest.fixture(scope="module")
def suite(classifier_settings: Settings) -> Iterator[EncoderClassifierSuite]:
    suite = EncoderClassifierSuite.from_settings(classifier_settings)
    yield suite
    suite.close()


def test_is_a_classifier_suite(suite: EncoderClassifierSuite) -> None:
    assert isinstance(suite, ClassifierSuite)


def test_moderation_result_schema(suite: EncoderClassifierSuite) -> None:
    result = suite.classify(TaskName.MODERATE, BENIGN)
    parsed = ModerationResult.model_validate(result)
    assert list(parsed.categories) == list(MODERATION_CATEGORIES)
    assert list(parsed.category_scores) == list(MODERATION_CATEGORIES)
    assert parsed.flagged is any(parsed.categories.values())
    assert parsed.flagged is False
    assert all(type(v) is float for v in result["category_scores"].values())


def test_risk_result_schema(suite: EncoderClassifierSuite) -> None:
    parsed = RiskResult.model_validate(suite.classify(TaskName.RISK, HAM))
    assert list(parsed.labels) == list(RISK_LABELS)
    assert parsed.score == max(parsed.labels.values())
    assert parsed.level == "low"


def test_sentiment_result_schema(suite: EncoderClassifierSuite) -> None:
    parsed = SentimentResult.model_validate(suite.classify(TaskName.SENTIMENT, BENIGN))
    assert set(parsed.scores) == {"negative", "neutral", "positive"}
    assert sum(parsed.scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert parsed.label == max(parsed.scores, key=lambda k: parsed.scores[k])


def test_toxic_text_scores_higher_than_benign(suite: EncoderClassifierSuite) -> None:
    toxic = suite.classify(TaskName.MODERATE, TOXIC)
    benign = suite.classify(TaskName.MODERATE, BENIGN)
    assert toxic["category_scores"]["harassment"] > benign["category_scores"]["harassment"] + 0.3
    # The threat categories rest on synthetic examples only (see the model card): they rank this
    # threat far above the benign text, but with low absolute scores.
    for category in ("harassment/threatening", "violence"):
        assert toxic["category_scores"][category] > 100 * benign["category_scores"][category], category
    assert toxic["flagged"] is True
    assert toxic["categories"]["harassment"] is True


def test_thresholds_come_from_settings(classifier_settings: Settings) -> None:
    strict = classifier_settings.model_copy(
        update={"moderation_thresholds": dict.fromkeys(MODERATION_CATEGORIES, 0.0)}
    )
    suite = EncoderClassifierSuite.from_settings(strict)
    try:
        result = suite.classify(TaskName.MODERATE, BENIGN)
        assert result["flagged"] is True
        assert all(result["categories"].values())
    finally:
        suite.close()


def test_scam_sms_scores_higher_risk(suite: EncoderClassifierSuite) -> None:
    scam = RiskResult.model_validate(suite.classify(TaskName.RISK, SCAM))
    ham = RiskResult.model_validate(suite.classify(TaskName.RISK, HAM))
    assert scam.score > ham.score + 0.3
    assert scam.level in ("medium", "high")
    phishing = suite.classify(
        TaskName.RISK, "Your bank account is locked. Verify your card number and PIN at http://bit.ly/x"
    )
    assert phishing["score"] >= 0.4


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("I absolutely love this phone, it's the best thing I've bought all year!", "positive"),
        ("Fantastic service, the staff were wonderful and so kind.", "positive"),
        ("This is awful. It broke on day one and support ignored me.", "negative"),
        ("Worst meal I've ever had, cold and disgusting.", "negative"),
        ("The meeting has been moved to Thursday at 2pm in room 4.", "neutral"),
    ],
)
def test_sentiment_labels(suite: EncoderClassifierSuite, text: str, label: str) -> None:
    assert suite.classify(TaskName.SENTIMENT, text)["label"] == label


def test_classify_batch_matches_single(suite: EncoderClassifierSuite) -> None:
    texts = [BENIGN, TOXIC, SCAM, HAM]
    batch = suite.classify_batch(TaskName.MODERATE, texts)
    assert len(batch) == 4
    single = suite.classify(TaskName.MODERATE, TOXIC)
    for category in MODERATION_CATEGORIES:
        assert batch[1]["category_scores"][category] == pytest.approx(
            single["category_scores"][category], abs=1e-4
        )
    assert suite.classify_batch(TaskName.RISK, []) == []


def test_concurrent_requests_share_forward_passes(suite: EncoderClassifierSuite) -> None:
    tasks = [TaskName.MODERATE, TaskName.RISK, TaskName.SENTIMENT]
    barrier = threading.Barrier(32)
    before = suite.encoder.forward_passes

    def one(i: int) -> tuple[TaskName, dict[str, Any]]:
        task = tasks[i % 3]
        barrier.wait()
        return task, suite.classify(task, f"message number {i}: {SCAM if i % 2 else BENIGN}", timeout_s=60)

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(one, range(32)))
    passes = suite.encoder.forward_passes - before
    models: dict[TaskName, type[BaseModel]] = {
        TaskName.MODERATE: ModerationResult,
        TaskName.RISK: RiskResult,
        TaskName.SENTIMENT: SentimentResult,
    }
    for task, result in results:
        models[task].model_validate(result)
    assert 1 <= passes < 32, passes
    assert passes <= 8, passes  # 32 requests in a handful of batches


def test_unknown_task_is_a_model_error(suite: EncoderClassifierSuite) -> None:
    with pytest.raises(ModelError, match="not a classifier task"):
        suite.classify(TaskName.GENERATE, "hello")


def test_bad_input_fails_only_its_own_request(suite: EncoderClassifierSuite) -> None:
    with pytest.raises(ModelError):
        suite.classify(TaskName.MODERATE, None)  # type: ignore[arg-type]
    assert suite.classify(TaskName.SENTIMENT, "great")["label"] in ("positive", "neutral", "negative")


def test_closed_suite_refuses_work(classifier_settings: Settings) -> None:
    suite = EncoderClassifierSuite.from_settings(classifier_settings)
    suite.close()
    with pytest.raises(ModelError, match="closed"):
        suite.classify(TaskName.MODERATE, "hello")


def test_missing_heads_name_the_prepare_command(tmp_path: Path, encoder_path: str) -> None:
    settings = Settings(encoder_model=encoder_path, heads_dir=tmp_path / "none", classify_device="cpu")
    with pytest.raises(ModelNotPreparedError, match="textfleet models prepare"):
        EncoderClassifierSuite.from_settings(settings)


def test_missing_encoder_names_the_prepare_command(tmp_path: Path, heads_dir: Path) -> None:
    settings = Settings(
        encoder_model=str(tmp_path / "no-encoder"), heads_dir=heads_dir, classify_device="cpu"
    )
    with pytest.raises(ModelNotPreparedError, match="textfleet models prepare"):
        EncoderClassifierSuite.from_settings(settings)


def test_one_default_head_per_classifier_task_of_the_registry() -> None:
    assert list(CLASSIFIER_TASKS) == ["moderate", "risk", "sentiment", "entities"]
    # `entities` is answered by the entity head (ner_head.py), the others by sentence heads
    assert list(SENTENCE_TASKS) == ["moderate", "risk", "sentiment"]
    assert set(head_specs()) == set(SENTENCE_TASKS)
    assert all(name == spec.name for name, spec in head_specs().items())
