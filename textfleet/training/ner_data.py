"""The NER corpora of the entity head, mapped onto the service's entity types, with a fixed split.

Reads `../shared/data` (see its README): WNUT-17 (`wnut17/`, CC BY 4.0: the shipped head is
trained on it) and CoNLL-2003 (`conll2003/`, research use only: measured on, never trained on for
the shipped head). Only the files in that folder are read (WNUT-17 train+dev, CoNLL-2003 train+dev);
the official test splits are not there and are never used. Each sentence's tokens are joined with
single spaces into a text with known character offsets. `split_of` puts each group (a WNUT-17
sentence, a whole CoNLL-2003 document) in train, val or test by a salted hash: fixed, reproducible.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CONLL_TYPES",
    "LICENSES",
    "NER_SPLIT_SALT",
    "TRAIN_PCT",
    "VAL_PCT",
    "WNUT_TYPES",
    "Sentence",
    "load_corpus",
    "split_of",
]

#: Changing the salt changes every split: don't, unless all figures are measured again.
NER_SPLIT_SALT = "textfleet-ner-split-v1"
#: Percent of groups in train and val; the rest is the held-out test split.
TRAIN_PCT, VAL_PCT = 70, 15
#: WNUT-17 types -> service types (README mapping: corporation + group -> organization).
WNUT_TYPES: dict[str, str] = {
    "person": "PERSON",
    "location": "LOCATION",
    "group": "ORG",
    "corporation": "ORG",
    "creative-work": "MISC",
    "product": "MISC",
}
#: CoNLL-2003 types -> service types.
CONLL_TYPES: dict[str, str] = {"PER": "PERSON", "LOC": "LOCATION", "ORG": "ORG", "MISC": "MISC"}
#: Corpus -> (license, whether the shipped head may be trained on it).
LICENSES: dict[str, tuple[str, bool]] = {
    "wnut17": ("CC BY 4.0 (Derczynski et al., W-NUT 2017)", True),
    "conll2003": ("no explicit license; Reuters RCV1 text, research and evaluation use only", False),
}
_FILES = {"wnut17": ("train.jsonl", "dev.jsonl"), "conll2003": ("train.jsonl", "dev.jsonl")}
_TYPES = {"wnut17": WNUT_TYPES, "conll2003": CONLL_TYPES}


@dataclass(frozen=True)
class Sentence:
    """One annotated sentence: its text, each word's character range and BIO tag (service types)."""

    source: str
    id: str
    group: str
    text: str
    words: tuple[tuple[int, int], ...]
    tags: tuple[str, ...]


def split_of(group: str) -> str:
    """`train`, `val` or `test` for a group, by a salted hash (the same on every machine)."""
    bucket = int.from_bytes(hashlib.sha256(f"{NER_SPLIT_SALT}:{group}".encode()).digest()[:8], "big") % 100
    if bucket < TRAIN_PCT:
        return "train"
    return "val" if bucket < TRAIN_PCT + VAL_PCT else "test"


def _mapped(tag: str, types: dict[str, str]) -> str:
    if tag == "O":
        return "O"
    prefix, _, kind = tag.partition("-")
    if prefix not in ("B", "I") or kind not in types:
        raise ValueError(f"unexpected NER tag {tag!r}")
    return f"{prefix}-{types[kind]}"


def _sentence(source: str, file: str, row: dict[str, object]) -> Sentence | None:
    tokens = [str(t) for t in row["tokens"]]  # type: ignore[attr-defined]
    raw_tags = [str(t) for t in row["ner_tags"]]  # type: ignore[attr-defined]
    if not tokens or tokens == ["-DOCSTART-"]:
        return None
    words, cursor = [], 0
    for token in tokens:
        words.append((cursor, cursor + len(token)))
        cursor += len(token) + 1
    ident = f"{file}:{row['id']}"
    group = f"{source}:doc:{file}:{row['doc']}" if "doc" in row else f"{source}:{ident}"
    tags = tuple(_mapped(t, _TYPES[source]) for t in raw_tags)
    return Sentence(source, ident, group, " ".join(tokens), tuple(words), tags)


def load_corpus(source: str, data_dir: Path) -> list[Sentence]:
    """Every annotated sentence of `source` (`wnut17` or `conll2003`) under `data_dir`."""
    if source not in _FILES:
        raise ValueError(f"unknown NER corpus {source!r}; known: {', '.join(_FILES)}")
    out: list[Sentence] = []
    for name in _FILES[source]:
        path = Path(data_dir) / source / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing (see ../shared/data/README.md)")
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    sentence = _sentence(source, name.split(".")[0], json.loads(line))
                    if sentence is not None:
                        out.append(sentence)
    return out
