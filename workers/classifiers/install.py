"""Installing the shipped default heads into the models directory (`textfleet models prepare`).

The heads are trained once from `../shared/data` (`make models-train`) and committed under
`workers/classifiers/defaults/`; preparing copies them to `settings.heads_path` with a marker keyed
by their content, atomically (built beside the target, then renamed), so a second call is instant.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from shared.errors import ModelNotPreparedError
from workers.classifiers.defaults import DEFAULT_TASKS, DEFAULTS_DIR
from workers.classifiers.heads import HEAD_FILE, HEAD_META_FILE
from workers.classifiers.ner_head import ENTITY_HEAD_DIR, ENTITY_HEAD_FILE, ENTITY_META_FILE

__all__ = ["MARKER_NAME", "defaults_key", "is_prepared", "prepare_heads"]

log = structlog.get_logger(__name__)

Progress = Callable[[str], None]

#: Written last into a prepared heads directory; its presence (with the right key) means "done".
MARKER_NAME = ".textfleet-prepared.json"


def _shipped_files(source: Path) -> list[Path]:
    files = []
    shipped = [(task, (HEAD_FILE, HEAD_META_FILE)) for task in DEFAULT_TASKS]
    for task, names in [*shipped, (ENTITY_HEAD_DIR, (ENTITY_HEAD_FILE, ENTITY_META_FILE))]:
        for name in names:
            path = source / task / name
            if not path.is_file():
                raise ModelNotPreparedError(
                    f"the shipped classifier head {path} is missing; run `make models-train`"
                )
            files.append(path)
    return files


def defaults_key(source: Path = DEFAULTS_DIR) -> str:
    """A digest of the shipped heads' files (changes whenever they are retrained)."""
    digest = hashlib.sha256()
    for path in _shipped_files(source):
        digest.update(str(path.relative_to(source)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def is_prepared(heads_dir: Path, source: Path = DEFAULTS_DIR) -> bool:
    """Whether `heads_dir` holds the current shipped heads."""
    try:
        stamp: dict[str, Any] = json.loads((Path(heads_dir) / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return False
    return stamp.get("key") == defaults_key(source)


def prepare_heads(heads_dir: Path, *, progress: Progress | None = None, source: Path = DEFAULTS_DIR) -> Path:
    """Copy the shipped heads into `heads_dir` (one subdirectory per task); instant when current."""
    heads_dir = Path(heads_dir).expanduser()
    if is_prepared(heads_dir, source):
        _say(progress, f"classifier heads already prepared in {heads_dir}")
        return heads_dir
    started = time.perf_counter()
    heads_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{heads_dir.name}.tmp-", dir=heads_dir.parent))
    try:
        for task in (*DEFAULT_TASKS, ENTITY_HEAD_DIR):
            shutil.copytree(source / task, tmp / task)
        stamp = {"key": defaults_key(source), "source": str(source), "created": time.time()}
        (tmp / MARKER_NAME).write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
        tmp.chmod(0o755)
        for path in tmp.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        _swap_into_place(tmp, heads_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - started
    log.info("heads.prepared", path=str(heads_dir), seconds=round(seconds, 3))
    _say(progress, f"classifier heads ready in {heads_dir} ({seconds:.1f}s)")
    return heads_dir


def _swap_into_place(tmp: Path, target: Path) -> None:
    """Rename `tmp` to `target`, moving an existing `target` aside first (then deleting it)."""
    old: Path | None = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except OSError:
        # Another process put its own (equivalent) heads in place between our two renames.
        if not (target / MARKER_NAME).is_file():
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)
