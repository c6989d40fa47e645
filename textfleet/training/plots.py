"""The plot of `textfleet eval`: PR curves (moderation vs alt-profanity-check, risk) and reliability.

matplotlib comes with the `bench` extra; it is imported here only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from textfleet.training.metrics import CALIBRATION_BINS, any_label

__all__ = ["plot_eval"]


def plot_eval(curves: dict[str, Any], path: Path) -> Path:
    """Three panels: moderation any-category PR (ours vs baseline) and per real-data category; risk
    PR per label; reliability diagram of every known (label, score) pair per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    pr, risk_ax, rel = axes
    if "moderate" in curves:
        y, probs, base, labels = curves["moderate"]
        for name, score_matrix, style in (
            ("textfleet", probs, "-"),
            ("alt-profanity-check", base[:, None], "--"),
        ):
            truth, score = any_label(
                y, score_matrix if score_matrix.shape[1] > 1 else np.repeat(score_matrix, y.shape[1], 1)
            )
            p, r, _ = precision_recall_curve(truth, score)
            pr.plot(r, p, style, lw=2, label=f"any: {name} (AP {average_precision_score(truth, score):.3f})")
        for j, label in enumerate(labels):
            known = ~np.isnan(y[:, j])
            truth = y[known, j]
            if truth.sum() >= 30:
                p, r, _ = precision_recall_curve(truth, probs[known, j])
                pr.plot(
                    r,
                    p,
                    lw=1,
                    alpha=0.7,
                    label=f"{label} (AP {average_precision_score(truth, probs[known, j]):.3f})",
                )
        pr.set_title("Moderation: precision-recall (test split)")
    if "risk" in curves:
        y, probs, names = curves["risk"]
        for j in range(y.shape[1]):
            known = ~np.isnan(y[:, j])
            truth = y[known, j]
            if 0 < truth.sum() < len(truth):
                p, r, _ = precision_recall_curve(truth, probs[known, j])
                risk_ax.plot(r, p, lw=1.5, label=f"{names[j]} (n+={int(truth.sum())})")
        risk_ax.set_title("Risk: precision-recall per label")
    for task, entry in curves.items():
        y, probs = entry[0], entry[1]
        known = ~np.isnan(y)
        truth, score = y[known].astype(int), probs[known]
        if 0 < truth.sum() < len(truth):
            observed, predicted = calibration_curve(truth, score, n_bins=CALIBRATION_BINS)
            rel.plot(predicted, observed, "o-", label=task)
    rel.plot([0, 1], [0, 1], ":", color="grey", label="perfect")
    rel.set_title("Reliability (all known labels)")
    rel.set_xlabel("mean predicted probability")
    rel.set_ylabel("observed frequency")
    for ax in (pr, risk_ax):
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
    for ax in axes:
        ax.legend(fontsize=7, loc="lower left")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
