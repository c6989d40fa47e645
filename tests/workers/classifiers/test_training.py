"""Seed data and `prepare_heads`: labels, caching, atomic output."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from shared.errors import ModelNotPreparedError
from shared.settings import MODERATION_CATEGORIES
from workers.classifiers import seeds
from workers.classifiers.heads import HEADS_FILE, HEADS_META_FILE, RISK_LABELS, SENTIMENT_LABELS, HeadSet
from workers.classifiers.training import MARKER_NAME, is_prepared, prepare_heads, training_data


def test_seeds_cover_every_label() -> None:
    assert set(seeds.MODERATION_SEEDS) == set(MODERATION_CATEGORIES)
    assert set(seeds.RISK_SEEDS) == set(RISK_LABELS)
    assert set(seeds.SENTIMENT_SEEDS) == set(SENTIMENT_LABELS)
    for groups in (seeds.MODERATION_SEEDS, seeds.RISK_SEEDS, seeds.SENTIMENT_SEEDS):
        for label, texts in groups.items():
            assert len(texts) >= 8, label
            assert len(set(texts)) == len(texts), label
    assert len(seeds.BENIGN) >= 100
    assert set(seeds.MODERATION_PARENTS) <= set(MODERATION_CATEGORIES)
    for implied in seeds.MODERATION_PARENTS.values():
        assert set(implied) <= set(MODERATION_CATEGORIES)


def test_training_data_shapes_and_parents() -> None:
    data = training_data()
    texts, targets = data["moderate"]
    assert len(texts) == len(targets)
    assert all(len(row) == len(MODERATION_CATEGORIES) for row in targets)
    row = targets[texts.index(seeds.MODERATION_SEEDS["hate/threatening"][0])]
    assert row[MODERATION_CATEGORIES.index("hate")] == 1.0
    assert row[MODERATION_CATEGORIES.index("hate/threatening")] == 1.0
    assert row[MODERATION_CATEGORIES.index("violence")] == 1.0
    assert row[MODERATION_CATEGORIES.index("harassment")] == 0.0
    benign = targets[texts.index(seeds.BENIGN[0])]
    assert sum(benign) == 0.0
    _, sentiment = data["sentiment"]
    assert all(sum(row) == 1.0 for row in sentiment)


def test_seed_hash_is_stable() -> None:
    assert seeds.seed_hash() == seeds.seed_hash()
    assert len(seeds.seed_hash()) == 64


@pytest.mark.models
def test_prepare_heads_writes_and_caches(encoder_path: str, heads_dir: Path) -> None:
    assert is_prepared(heads_dir, encoder_path)
    for name in (HEADS_FILE, HEADS_META_FILE, MARKER_NAME):
        assert (heads_dir / name).is_file()
    meta = json.loads((heads_dir / HEADS_META_FILE).read_text())
    assert meta["encoder"] == encoder_path
    assert meta["heads"]["moderate"]["labels"] == list(MODERATION_CATEGORIES)
    assert meta["heads"]["risk"]["labels"] == list(RISK_LABELS)
    assert meta["heads"]["sentiment"]["labels"] == list(SENTIMENT_LABELS)
    assert meta["train_seconds"] < 60
    leftovers = [p.name for p in heads_dir.parent.iterdir() if p.name != heads_dir.name]
    assert leftovers == []

    started = time.perf_counter()
    assert prepare_heads(encoder_path, heads_dir) == heads_dir
    assert time.perf_counter() - started < 1.0  # cached: no encoder load, no training

    heads = HeadSet.load(heads_dir)
    assert heads.dim == 384
    assert set(heads.specs) == {"moderate", "risk", "sentiment"}
    assert not is_prepared(heads_dir, encoder_path + "-other")


def test_missing_heads_name_the_prepare_command(tmp_path: Path) -> None:
    with pytest.raises(ModelNotPreparedError, match="textfleet models prepare"):
        HeadSet.load(tmp_path / "nothing-here")
