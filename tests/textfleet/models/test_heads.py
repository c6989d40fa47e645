"""textfleet.models.heads: the shipped heads are copied through the one prepared-directory writer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from textfleet.models import heads
from textfleet.training.defaults import DEFAULT_TASKS, DEFAULTS_DIR
from workers.classifiers.ner_head import ENTITY_HEAD_DIR


def test_heads_are_copied_with_a_content_keyed_marker_and_cached(tmp_path: Path) -> None:
    target = tmp_path / "heads"
    messages: list[str] = []
    assert heads.prepare_heads(target, progress=messages.append) == target
    assert sorted(p.name for p in target.iterdir() if p.is_dir()) == sorted([*DEFAULT_TASKS, ENTITY_HEAD_DIR])
    marker = json.loads((target / heads.MARKER_NAME).read_text())
    assert marker["key"] == heads.defaults_key()
    assert heads.is_prepared(target)
    assert [p.name for p in tmp_path.iterdir()] == ["heads"]  # no temporary directory left

    before = (target / heads.MARKER_NAME).stat().st_mtime_ns
    messages.clear()
    heads.prepare_heads(target, progress=messages.append)
    assert (target / heads.MARKER_NAME).stat().st_mtime_ns == before
    assert messages == [f"classifier heads already prepared in {target}"]


def test_retrained_heads_are_copied_again(tmp_path: Path) -> None:
    source = tmp_path / "shipped"
    shutil.copytree(DEFAULTS_DIR, source)
    target = heads.prepare_heads(tmp_path / "heads", source=source)
    task = DEFAULT_TASKS[0]
    meta = source / task / "head.json"
    meta.write_text(meta.read_text().replace("{", '{"retrained": true, ', 1))
    assert not heads.is_prepared(target, source)
    heads.prepare_heads(target, source=source)
    assert heads.is_prepared(target, source)
    assert (target / task / "head.json").read_text() == meta.read_text()
