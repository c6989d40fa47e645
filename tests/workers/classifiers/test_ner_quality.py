"""The shipped entity head's entity-level F1 on fixed samples of its held-out splits stays above a floor.

The samples are the first `SAMPLE` sentences of the WNUT-17 and CoNLL-2003 held-out splits fixed by
`textfleet.training.ner_data.split_of` (never trained or tuned on; the official test splits are never
read); each floor sits a little below the value measured when the head was trained (see
defaults/entities/MODEL_CARD.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workers.classifiers.conftest import DATA_DIR, missing
from workers.classifiers.encoder import SentenceEncoder
from workers.classifiers.ner import EntityRecognizer
from workers.classifiers.ner_head import ENTITY_HEAD_DIR, EntityHead

pytestmark = pytest.mark.models

SAMPLE = 200
#: Micro F1 measured on each sample with the shipped head (in the comments), minus a margin for
#: numeric differences between machines.
F1_FLOORS = {
    "wnut17": 0.54,  # measured 0.591 (P 0.544, R 0.648, 105 entities)
    "conll2003": 0.80,  # measured 0.859 (P 0.835, R 0.885, 383 entities)
}


@pytest.mark.parametrize("corpus", sorted(F1_FLOORS))
def test_entity_f1_on_the_held_out_sample_is_above_the_floor(
    corpus: str, encoder_path: str, heads_dir: Path
) -> None:
    try:
        import seqeval  # noqa: F401
    except ImportError:
        missing("seqeval (the `train` extra) measures entity F1: pip install -e '.[train]'")
    from textfleet.training.ner import encode, evaluate
    from textfleet.training.ner_data import load_corpus, split_of

    if not (DATA_DIR / corpus / "train.jsonl").is_file():
        missing(f"the {corpus} data is not in {DATA_DIR}")
    sample = [s for s in load_corpus(corpus, DATA_DIR) if split_of(s.group) == "test"][:SAMPLE]
    encoder = SentenceEncoder.load(encoder_path, device="cpu")
    head = EntityHead.load(heads_dir / ENTITY_HEAD_DIR)
    recognizer = EntityRecognizer(head, encoder.tokenizer, max_length=encoder.max_length)
    figures = evaluate(recognizer, encode(sample, recognizer, encoder, label="held-out sample"))
    assert figures["sentences"] == SAMPLE
    assert figures["micro"]["f1-score"] >= F1_FLOORS[corpus], figures
