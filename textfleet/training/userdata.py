"""Reading a user's labelled file (CSV or JSONL) for `textfleet train` and `textfleet eval`.

Accepted shapes (a row's split group is its text, so duplicates share a split):

* multi-class: a `label` column/key holding one label name per row;
* multi-label, JSONL: `labels` as a list of positive label names (every other label negative), or as
  an object {label: 0/1} (labels left out are unknown);
* multi-label, CSV: one 0/1 column per label (`--labels a,b,c`; an empty cell is unknown).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from shared.errors import InvalidInputError
from textfleet.training.corpora import Example

__all__ = ["LabelledFile", "read_labelled"]


@dataclass
class LabelledFile:
    """The examples of a labelled file, its kind and its label names (sorted unless given)."""

    examples: list[Example]
    kind: str
    labels: tuple[str, ...]


def _fail(path: Path, message: str) -> InvalidInputError:
    return InvalidInputError(f"{path}: {message}")


def _rows(path: Path) -> list[dict[str, object]]:
    if not path.is_file():
        raise _fail(path, "no such file")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _fail(path, f"line {number} is not JSON ({exc})") from exc
            if not isinstance(obj, dict):
                raise _fail(path, f"line {number} is not a JSON object")
            rows.append(obj)
        return rows
    if path.suffix.lower() in (".csv", ".tsv"):
        csv.field_size_limit(1 << 30)
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
    raise _fail(path, "expected a .csv, .tsv or .jsonl file")


def _value(path: Path, number: int, label: str, raw: object) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise _fail(path, f"row {number}: {label}={raw!r} is not 0 or 1") from exc
    if value not in (0.0, 1.0):
        raise _fail(path, f"row {number}: {label}={raw!r} is not 0 or 1")
    return value


def read_labelled(
    path: Path, *, text_column: str = "text", label_column: str = "label", labels: tuple[str, ...] = ()
) -> LabelledFile:
    """The examples of `path`. Raises shared.errors.InvalidInputError naming the problem."""
    path = Path(path)
    rows = _rows(path)
    if not rows:
        raise _fail(path, "holds no rows")
    examples: list[Example] = []
    if labels:
        kind = "multilabel"
    elif label_column in rows[0]:
        kind = "multiclass"
    elif "labels" in rows[0]:
        kind = "multilabel"
    else:
        raise _fail(path, f"no {label_column!r} or 'labels' field; pass --labels for 0/1 columns")
    seen: set[str] = set(labels)
    for number, row in enumerate(rows, start=1):
        text = row.get(text_column)
        if not isinstance(text, str) or not text.strip():
            raise _fail(path, f"row {number} has no text in {text_column!r}")
        known: dict[str, float] = {}
        if labels:
            for label in labels:
                value = _value(path, number, label, row.get(label))
                if value is not None:
                    known[label] = value
        elif kind == "multiclass":
            name = row.get(label_column)
            if name is None or str(name) == "":
                raise _fail(path, f"row {number} has no {label_column!r}")
            known[str(name)] = 1.0
            seen.add(str(name))
        else:
            raw = row.get("labels")
            if isinstance(raw, list):
                known = {str(name): 1.0 for name in raw}
                known["*"] = 0.0  # every other label is negative
            elif isinstance(raw, dict):
                known = {
                    str(k): v for k, raw_v in raw.items() if (v := _value(path, number, k, raw_v)) is not None
                }
            else:
                raise _fail(path, f"row {number}: 'labels' must be a list or an object")
            seen.update(name for name in known if name != "*")
        examples.append(Example(" ".join(text.split()), "file", " ".join(text.split()), known))
    names = labels or tuple(sorted(seen))
    if len(names) < 2 and kind == "multiclass":
        raise _fail(path, f"a multi-class file needs at least two labels, found {list(names)}")
    final = []
    for example in examples:
        known = dict(example.labels)
        if known.pop("*", None) is not None or kind == "multiclass":
            known = {name: known.get(name, 0.0) for name in names}
        final.append(Example(example.text, example.source, example.group, known))
    return LabelledFile(final, kind, names)
