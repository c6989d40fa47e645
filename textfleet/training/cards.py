"""Model cards: `MODEL_CARD.md` of a model directory, written from its head and measured metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from textfleet.training.corpora import SPLIT_SALT, TRAIN_PCT, VAL_PCT
from workers.classifiers.heads import Head

__all__ = ["BASIS_FILE", "write_card"]

#: What each default label rests on (data file beside this module).
BASIS_FILE = Path(__file__).with_name("data") / "label_basis.json"


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _label_rows(head: Head, test: dict[str, Any]) -> list[str]:
    basis: dict[str, str] = json.loads(BASIS_FILE.read_text()).get(head.spec.name, {})
    rows = [
        "| label | test n (pos) | AUPRC | AUROC | ECE | threshold | P | R | F1 | rests on |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label in head.spec.labels:
        m = test["labels"].get(label, {})
        rows.append(
            f"| {label} | {m.get('n', 0)} ({m.get('positives', 0)}) | {_fmt(m.get('auprc'))} | "
            f"{_fmt(m.get('auroc'))} | {_fmt(m.get('ece'))} | {_fmt(head.thresholds.get(label))} | "
            f"{_fmt(m.get('precision'))} | {_fmt(m.get('recall'))} | {_fmt(m.get('f1'))} | "
            f"{basis.get(label, 'the training file')} |"
        )
    return rows


def write_card(directory: Path, head: Head, metrics: dict[str, Any]) -> Path:
    """Write `directory/MODEL_CARD.md` and return its path."""
    meta = head.meta
    test = metrics["test"]
    lines = [
        f"# Model card: `{meta.get('name', head.spec.name)}` ({head.spec.kind})",
        "",
        f"A calibrated MLP head ({head.dim}-d input, {head.spec.hidden} hidden units) over the frozen "
        f"`{meta.get('encoder', 'encoder')}` sentence encoder, reading the mean-pooled hidden states of "
        f"layers {list(head.spec.features.layers)} (each L2-normalised, concatenated). Trained by "
        "`textfleet train` with class weighting and early stopping; calibrated on the validation split "
        "(Platt scaling per label, or temperature + biases for a softmax head).",
        "",
        "## Data",
        "",
        f"Split: every example (every user for the Reddit set) goes to train/val/test by a salted hash "
        f"(`{SPLIT_SALT}`, {TRAIN_PCT}/{VAL_PCT}/{100 - TRAIN_PCT - VAL_PCT}); sizes "
        + ", ".join(f"{k} {v}" for k, v in metrics["splits"].items())
        + ". Early stopping, calibration and thresholds use val only; the figures below are on test.",
        "",
        "| source | license | train | val | test |",
        "| --- | --- | --- | --- | --- |",
    ]
    licenses = meta.get("licenses", {})
    for source, counts in sorted(metrics["sources"].items()):
        lines.append(
            f"| {source} | {licenses.get(source, 'see data')} | {counts.get('train', 0)} | "
            f"{counts.get('val', 0)} | {counts.get('test', 0)} |"
        )
    lines += ["", "## Held-out figures (test split)", ""]
    if head.spec.kind == "multiclass":
        lines.append(
            f"Accuracy {_fmt(test['accuracy'])}, macro-F1 **{_fmt(test['macro_f1'])}** (n={test['n']})."
        )
        basis: dict[str, str] = json.loads(BASIS_FILE.read_text()).get(head.spec.name, {})
        lines += [
            "",
            "| label | F1 | AUPRC (one-vs-rest) | ECE | rests on |",
            "| --- | --- | --- | --- | --- |",
        ]
        for label in head.spec.labels:
            m = test["labels"][label]
            lines.append(
                f"| {label} | {_fmt(m['f1'])} | {_fmt(m['auprc'])} | {_fmt(m.get('ece'))} | "
                f"{basis.get(label, 'the training file')} |"
            )
        lines += ["", "The predicted label is the most probable one; no thresholds."]
    else:
        a = test["any"]
        lines.append(
            f"Any label (flagged): AUPRC **{_fmt(a['auprc'])}**, AUROC {_fmt(a['auroc'])}, "
            f"precision {_fmt(a.get('precision'))}, recall {_fmt(a.get('recall'))} at the thresholds "
            f"(n={a['n']}, {a['positives']} positive)."
        )
        target = meta.get("config", {}).get("target_precision")
        lines += [
            "",
            f"Thresholds: the lowest score reaching precision >= {target} on val (the best-F1 score "
            f"where none does with recall >= {meta.get('config', {}).get('min_recall')}; at least 0.5 "
            f"for labels with fewer than {meta.get('config', {}).get('min_positives')} val positives). "
            "Labels backed only by synthetic examples have a handful of test positives: their figures "
            "say little, and their scores should be treated with caution.",
            "",
            *_label_rows(head, test),
        ]
    by_source = metrics.get("test_by_source", {})
    if by_source:
        lines += ["", "## Test figures by source", ""]
        for source, m in sorted(by_source.items()):
            if "macro_f1" in m:
                lines.append(
                    f"- {source}: macro-F1 {_fmt(m['macro_f1'])}, accuracy {_fmt(m['accuracy'])} (n={m['n']})"
                )
            elif m["any"]["auprc"] is not None:
                a = m["any"]
                lines.append(
                    f"- {source}: any-label AUPRC {_fmt(a['auprc'])}, AUROC {_fmt(a['auroc'])} (n={a['n']})"
                )
            else:
                known = [
                    f"{k} AUPRC {_fmt(v['auprc'])} (base rate {v['positives'] / v['n']:.2f}), "
                    f"AUROC {_fmt(v['auroc'])}"
                    for k, v in m["labels"].items()
                    if v.get("auprc")
                ]
                lines.append(f"- {source}: {', '.join(known) or 'no positives'}")
    lines += [
        "",
        "## Limits",
        "",
        "English only. The real data is mostly tweets, Reddit posts, SMS and e-mail; other registers "
        "transfer less well. Labels mapped from other taxonomies (e.g. 'offensive' -> harassment) are "
        "coarse. Scores are calibrated on the validation split's mix of sources, not on your traffic: "
        "measure on your own labelled data with `textfleet eval` and set thresholds per request.",
        "",
    ]
    path = directory / "MODEL_CARD.md"
    path.write_text("\n".join(lines))
    return path
