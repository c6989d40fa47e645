"""Measuring heads: AUPRC, AUROC, F1 at thresholds, calibration error, macro-F1 (scikit-learn).

Targets are arrays with NaN for unknown labels; every per-label figure uses the rows where that
label is known. "any" (moderation's flagged) is positive when any known label is positive and
negative when every label of the row is known negative; rows with neither are left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["any_label", "expected_calibration_error", "label_metrics", "multiclass_metrics"]

#: Bins of the reliability diagram and of the expected calibration error.
CALIBRATION_BINS = 10


def expected_calibration_error(truth: np.ndarray, score: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """ECE over equal-width bins: sum of |observed rate - mean score| weighted by bin size.

    The per-bin figures come from `sklearn.calibration.calibration_curve`."""
    from sklearn.calibration import calibration_curve

    if len(truth) == 0 or truth.min() == truth.max():
        return float("nan")
    observed, predicted = calibration_curve(truth, score, n_bins=bins, strategy="uniform")
    counts = np.histogram(score, bins=np.linspace(0.0, 1.0, bins + 1))[0]
    counts = counts[counts > 0]
    return float(np.sum(np.abs(observed - predicted) * counts) / counts.sum())


def _binary(truth: np.ndarray, score: np.ndarray, threshold: float | None) -> dict[str, Any]:
    from sklearn.metrics import (
        average_precision_score,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    positives = int(truth.sum())
    out: dict[str, Any] = {"n": len(truth), "positives": positives}
    if positives == 0 or positives == len(truth):
        return {**out, "auprc": None, "auroc": None}
    out["auprc"] = round(float(average_precision_score(truth, score)), 4)
    out["auroc"] = round(float(roc_auc_score(truth, score)), 4)
    out["ece"] = round(expected_calibration_error(truth, score), 4)
    if threshold is not None:
        predicted = (score >= threshold).astype(int)
        out["threshold"] = threshold
        out["precision"] = round(float(precision_score(truth, predicted, zero_division=0)), 4)
        out["recall"] = round(float(recall_score(truth, predicted, zero_division=0)), 4)
        out["f1"] = round(float(f1_score(truth, predicted, zero_division=0)), 4)
    return out


def any_label(y: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(truth, score) of "any label": max score per row, on rows whose answer is determined."""
    positive = np.nansum(y, axis=1) > 0
    all_known_negative = (~np.isnan(y)).all(axis=1) & ~positive
    rows = positive | all_known_negative
    return positive[rows].astype(int), probs[rows].max(axis=1)


def label_metrics(
    y: np.ndarray, probs: np.ndarray, labels: tuple[str, ...], thresholds: dict[str, float] | None = None
) -> dict[str, Any]:
    """Per-label and "any" figures of multi-label scores `probs` against targets `y` (NaN = unknown)."""
    thresholds = thresholds or {}
    per_label = {}
    for j, label in enumerate(labels):
        known = ~np.isnan(y[:, j])
        per_label[label] = _binary(y[known, j].astype(int), probs[known, j], thresholds.get(label))
    truth, score = any_label(y, probs)
    any_figures = _binary(truth, score, None)
    if thresholds:
        limits = np.array([thresholds.get(label, 0.5) for label in labels])
        flagged = (probs >= limits).any(axis=1)
        positive = np.nansum(y, axis=1) > 0
        rows = positive | ((~np.isnan(y)).all(axis=1) & ~positive)
        from sklearn.metrics import f1_score, precision_score, recall_score

        t, p = np.asarray(positive)[rows].astype(int), np.asarray(flagged)[rows].astype(int)
        any_figures["precision"] = round(float(precision_score(t, p, zero_division=0)), 4)
        any_figures["recall"] = round(float(recall_score(t, p, zero_division=0)), 4)
        any_figures["f1"] = round(float(f1_score(t, p, zero_division=0)), 4)
    return {"any": any_figures, "labels": per_label}


def multiclass_metrics(y: np.ndarray, probs: np.ndarray, labels: tuple[str, ...]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class F1 and one-vs-rest AUPRC/AUROC of softmax scores."""
    from sklearn.metrics import accuracy_score, f1_score

    truth = np.nan_to_num(y, nan=0.0).argmax(axis=1)  # unknown classes are simply not this one
    predicted = probs.argmax(axis=1)
    per_class = f1_score(truth, predicted, average=None, labels=list(range(len(labels))), zero_division=0)
    out: dict[str, Any] = {
        "n": len(truth),
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "macro_f1": round(float(f1_score(truth, predicted, average="macro", zero_division=0)), 4),
        "labels": {},
    }
    for j, label in enumerate(labels):
        figures = _binary((truth == j).astype(int), probs[:, j], None)
        figures["f1"] = round(float(per_class[j]), 4)
        out["labels"][label] = figures
    return out
