"""`textfleet eval`: measure heads on held-out data, side by side with `alt-profanity-check`.

* `evaluate_dir`: one model directory on a labelled file (or on given examples).
* `evaluate_defaults`: every default head on the test split of its corpus (the same fixed split as
  training) plus the moderation head against alt-profanity-check on the same texts (any-category
  and per category; its single score stands for every category), and Financial PhraseBank as an
  out-of-domain sentiment check. Writes `eval.json`, `EVAL.md` and `eval.png` (PR curves and a
  reliability diagram). alt-profanity-check is an eval-only dependency (`textfleet[eval]`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import ConfigurationError
from textfleet.training.corpora import Example, corpus, financial_phrasebank
from textfleet.training.defaults import DEFAULT_TASKS, DEFAULTS_DIR, shippable
from textfleet.training.metrics import any_label, label_metrics, multiclass_metrics
from textfleet.training.pipeline import Dataset, FeatureSource
from textfleet.training.train import predict
from workers.classifiers.heads import Head

__all__ = ["evaluate_defaults", "evaluate_dir", "profanity_scores", "scores"]

BASELINE = "alt-profanity-check"


def profanity_scores(texts: Sequence[str]) -> np.ndarray:
    """alt-profanity-check's probability per text (raises ConfigurationError when not installed)."""
    try:
        from profanity_check import predict_prob
    except ImportError as exc:
        raise ConfigurationError(
            "the comparison needs alt-profanity-check: `pip install 'textfleet[eval]'`"
        ) from exc
    return np.asarray(predict_prob(list(texts)), dtype=np.float64)


def scores(head: Head, source: FeatureSource, examples: Sequence[Example]) -> np.ndarray:
    """The calibrated scores of `head` on `examples`."""
    return predict(head, source.features(head.spec, [e.text for e in examples]))


def _figures(head: Head, y: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    if head.spec.kind == "multiclass":
        return multiclass_metrics(y, probs, head.spec.labels)
    return label_metrics(y, probs, head.spec.labels, head.thresholds)


def evaluate_dir(model_dir: Path, examples: Sequence[Example], source: FeatureSource) -> dict[str, Any]:
    """Figures of the model in `model_dir` on `examples` (labels not in the model are ignored)."""
    head = Head.load(model_dir)
    data = Dataset.of(examples, head.spec.labels)
    if not data.examples:
        raise ConfigurationError(
            f"none of the examples carries a label of {model_dir} ({list(head.spec.labels)})"
        )
    return _figures(head, data.y, scores(head, source, data.examples))


def _baseline(y: np.ndarray, baseline: np.ndarray, labels: tuple[str, ...]) -> dict[str, Any]:
    wide = np.repeat(baseline[:, None], len(labels), axis=1)
    return label_metrics(y, wide, labels)


def evaluate_defaults(
    data_dir: Path, source: FeatureSource, out_dir: Path, *, heads_dir: Path = DEFAULTS_DIR
) -> dict[str, Any]:
    """Measure every default head on its test split; write eval.json, EVAL.md, eval.png to out_dir."""
    report: dict[str, Any] = {"split": "test", "tasks": {}}
    curves: dict[str, Any] = {}
    for task in DEFAULT_TASKS:
        head = Head.load(heads_dir / task)
        data = Dataset.of(shippable(corpus(task, data_dir)), head.spec.labels, "test")
        probs = scores(head, source, data.examples)
        entry: dict[str, Any] = {"n": len(data.examples), "model": _figures(head, data.y, probs)}
        if task == "moderate":
            base = profanity_scores([e.text for e in data.examples])
            entry[BASELINE] = _baseline(data.y, base, head.spec.labels)
            curves["moderate"] = (data.y, probs, base, head.spec.labels)
        elif task == "sentiment":
            fpb = Dataset.of(financial_phrasebank(data_dir), head.spec.labels, "test")
            entry["financial_phrasebank_test"] = _figures(head, fpb.y, scores(head, source, fpb.examples))
            curves["sentiment"] = (data.y, probs)
        else:
            curves[task] = (data.y, probs, head.spec.labels)
        report["tasks"][task] = entry
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "eval.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (out_dir / "EVAL.md").write_text(markdown(report))
    from textfleet.training.plots import plot_eval

    plot_eval(curves, out_dir / "eval.png")
    return report


def _f(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables (what `textfleet eval` prints and README quotes)."""
    lines = ["# Held-out figures of the default heads (test split, one `textfleet eval` run)", ""]
    mod = report["tasks"].get("moderate")
    if mod:
        ours, base = mod["model"], mod[BASELINE]
        lines += [
            f"## Moderation vs {BASELINE} (n={mod['n']})",
            "",
            f"| label | n (pos) | AUPRC textfleet | AUPRC {BASELINE} | AUROC textfleet | AUROC {BASELINE} |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for label in ["any", *ours["labels"]]:
            a = ours["any"] if label == "any" else ours["labels"][label]
            b = base["any"] if label == "any" else base["labels"][label]
            name = "**any category**" if label == "any" else label
            lines.append(
                f"| {name} | {a['n']} ({a['positives']}) | {_f(a['auprc'])} | {_f(b['auprc'])} | "
                f"{_f(a['auroc'])} | {_f(b['auroc'])} |"
            )
        lines.append("")
    risk = report["tasks"].get("risk")
    if risk:
        lines += [
            f"## Risk (n={risk['n']})",
            "",
            "| label | n (pos) | AUPRC | AUROC | F1 |",
            "| --- | --- | --- | --- | --- |",
        ]
        for label, m in [("any", risk["model"]["any"]), *risk["model"]["labels"].items()]:
            figures = " | ".join(_f(m.get(key)) for key in ("auprc", "auroc", "f1"))
            lines.append(f"| {label} | {m['n']} ({m['positives']}) | {figures} |")
        lines.append("")
    sent = report["tasks"].get("sentiment")
    if sent:
        m, fpb = sent["model"], sent["financial_phrasebank_test"]
        lines += [
            f"## Sentiment (n={sent['n']})",
            "",
            f"Macro-F1 **{_f(m['macro_f1'])}**, accuracy {_f(m['accuracy'])} on the tweet test split; "
            f"out of domain (Financial PhraseBank test part, n={fpb['n']}): macro-F1 {_f(fpb['macro_f1'])}.",
            "",
            "| label | F1 | AUPRC (one-vs-rest) |",
            "| --- | --- | --- |",
        ]
        for label, v in m["labels"].items():
            lines.append(f"| {label} | {_f(v['f1'])} | {_f(v['auprc'])} |")
        lines.append("")
    return "\n".join(lines)


__all__ += ["any_label", "markdown"]
