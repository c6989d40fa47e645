"""The NER corpora: type mapping, offsets of the joined text, and the fixed salted split."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from textfleet.training.ner_data import load_corpus, split_of


def _write(root: Path, source: str, rows: list[dict[str, object]]) -> None:
    (root / source).mkdir(parents=True, exist_ok=True)
    for name in ("train.jsonl", "dev.jsonl"):
        (root / source / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_wnut_types_map_onto_service_types_with_word_offsets(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "wnut17",
        [
            {
                "id": "train-0",
                "tokens": ["Ünï", "@Apple", "Paris", "Star", "Wars"],
                "ner_tags": ["B-person", "B-corporation", "B-location", "B-creative-work", "I-creative-work"],
            }
        ],
    )
    first = load_corpus("wnut17", tmp_path)[0]
    assert first.tags == ("B-PERSON", "B-ORG", "B-LOCATION", "B-MISC", "I-MISC")
    assert [first.text[a:b] for a, b in first.words] == ["Ünï", "@Apple", "Paris", "Star", "Wars"]
    assert first.group == "wnut17:train:train-0"


def test_conll_sentences_are_grouped_by_document_and_docstart_is_dropped(tmp_path: Path) -> None:
    rows = [
        {"id": "train-0", "doc": 7, "tokens": ["-DOCSTART-"], "ner_tags": ["O"]},
        {"id": "train-1", "doc": 7, "tokens": ["EU", "rejects"], "ner_tags": ["B-ORG", "O"]},
    ]
    _write(tmp_path, "conll2003", rows)
    sentences = load_corpus("conll2003", tmp_path)
    assert [s.tags for s in sentences] == [("B-ORG", "O"), ("B-ORG", "O")]  # one per file
    assert {s.group for s in sentences} == {"conll2003:doc:train:7", "conll2003:doc:dev:7"}


def test_an_unknown_tag_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path, "wnut17", [{"id": "x", "tokens": ["a"], "ner_tags": ["B-alien"]}])
    with pytest.raises(ValueError, match="B-alien"):
        load_corpus("wnut17", tmp_path)


def test_the_split_is_fixed_and_roughly_70_15_15() -> None:
    groups = [f"wnut17:train:train-{i}" for i in range(4000)]
    counts = Counter(split_of(g) for g in groups)
    assert [split_of(g) for g in groups[:50]] == [split_of(g) for g in groups[:50]]
    assert split_of("wnut17:train:train-0") == "val"  # pinned: changing the salt changes every figure
    assert 0.65 < counts["train"] / 4000 < 0.75 and 0.12 < counts["val"] / 4000 < 0.18
