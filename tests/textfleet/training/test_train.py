"""Training and measuring heads on small synthetic features (no encoder): fast units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from textfleet.training.metrics import any_label, expected_calibration_error, label_metrics
from textfleet.training.train import TrainConfig, choose_thresholds, predict, train_head
from workers.classifiers.features import FeatureSpec, combine
from workers.classifiers.heads import Head, HeadSpec

FAST = TrainConfig(epochs=30, patience=3, batch_size=64)


def _multilabel(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Label a is positive when feature 0 > 0.8, label b when feature 1 > 0.8; noise elsewhere."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = np.stack([(x[:, 0] > 0.8), (x[:, 1] > 0.8)], axis=1).astype(np.float32)
    return x, y


def test_multilabel_head_learns_calibrates_and_sets_thresholds(tmp_path: Path) -> None:
    spec = HeadSpec("toy", "multilabel", ("a", "b"), hidden=16)
    train, val, test = _multilabel(1200, 0), _multilabel(400, 1), _multilabel(400, 2)
    y_train = train[1].copy()
    y_train[:300, 1] = np.nan  # unknown labels are masked out, not negatives
    head = train_head(spec, (train[0], y_train), val, FAST)
    figures = label_metrics(test[1], predict(head, test[0]), spec.labels, head.thresholds)
    assert figures["labels"]["a"]["auprc"] > 0.9
    assert figures["labels"]["b"]["auprc"] > 0.9
    assert figures["any"]["auprc"] > 0.9
    assert figures["labels"]["a"]["ece"] < 0.08  # calibrated on val
    assert set(head.thresholds) == {"a", "b"}
    assert figures["labels"]["a"]["precision"] >= 0.7  # thresholds aim at precision 0.8 on val
    head.save(tmp_path / "toy")
    again = Head.load(tmp_path / "toy")
    assert again.thresholds == head.thresholds
    assert np.allclose(predict(again, test[0]), predict(head, test[0]), atol=1e-6)


def test_multiclass_head_macro_f1() -> None:
    rng = np.random.default_rng(3)
    centers = rng.normal(scale=3.0, size=(3, 6))

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 3, size=n)
        x = (centers[labels] + rng.normal(size=(n, 6))).astype(np.float32)
        return x, np.eye(3, dtype=np.float32)[labels]

    spec = HeadSpec("toy3", "multiclass", ("neg", "neu", "pos"), hidden=16)
    train, val, test = sample(900), sample(300), sample(300)
    head = train_head(spec, train, val, FAST)
    probs = predict(head, test[0])
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    accuracy = float((probs.argmax(axis=1) == test[1].argmax(axis=1)).mean())
    assert accuracy > 0.85
    assert head.thresholds == {}


def test_early_stopping_keeps_the_best_epoch() -> None:
    spec = HeadSpec("toy", "multilabel", ("a", "b"), hidden=64, dropout=0.0)
    x, _ = _multilabel(80, 4)
    noise = np.random.default_rng(6).integers(0, 2, size=(80, 2)).astype(np.float32)
    # Random training labels: the head memorises them, so the validation loss soon turns up.
    config = TrainConfig(epochs=200, patience=3, batch_size=16)
    head = train_head(spec, (x, noise), _multilabel(200, 5), config)
    assert head.meta["epochs_run"] < 200
    assert head.meta["epochs_run"] == head.meta["best_epoch"] + config.patience


def test_choose_thresholds_reaches_target_precision() -> None:
    truth = np.array([0, 0, 0, 0, 1, 0, 1, 1, 1, 1], dtype=np.float32)[:, None]
    score = np.linspace(0.05, 0.95, 10, dtype=np.float32)[:, None]
    [threshold] = choose_thresholds(score, truth, ("x",), 0.8).values()
    assert threshold == pytest.approx(0.45, abs=1e-3)  # from 0.45 up: 5 of 6 positive (0.35: 5 of 7)
    none_positive = choose_thresholds(score, np.zeros_like(truth), ("x",), 0.8)
    assert none_positive == {"x": 0.5}


def test_any_label_leaves_out_undetermined_rows() -> None:
    nan = np.nan
    y = np.array([[1, nan], [0, 0], [0, nan], [nan, 1]], dtype=np.float32)
    probs = np.array([[0.9, 0.1], [0.2, 0.1], [0.3, 0.8], [0.1, 0.7]], dtype=np.float32)
    truth, score = any_label(y, probs)
    assert truth.tolist() == [1, 0, 1]  # row 2 is neither known positive nor fully known negative
    assert score.tolist() == pytest.approx([0.9, 0.2, 0.7])


def test_expected_calibration_error() -> None:
    rng = np.random.default_rng(0)
    score = rng.uniform(size=20000)
    truth = (rng.uniform(size=20000) < score).astype(int)
    assert expected_calibration_error(truth, score) < 0.02
    assert expected_calibration_error(truth, np.clip(score + 0.3, 0, 1)) > 0.15


def test_combine_normalises_each_layer() -> None:
    states = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4) + 1
    features = combine(states, FeatureSpec((0, 2)))
    assert features.shape == (2, 8)
    assert np.allclose(np.linalg.norm(features[:, :4], axis=1), 1.0)
    assert np.allclose(np.linalg.norm(features[:, 4:], axis=1), 1.0)
    assert FeatureSpec((4, 5, 6)).dim(384) == 1152
