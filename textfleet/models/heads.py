"""Installing the shipped default heads into the models directory (`textfleet models prepare`).

The heads are trained once from `../shared/data` (`make models-train`) and committed under
`workers/classifiers/defaults/`; preparing copies them to `settings.heads_path` through
`textfleet.models.prepare.prepare_dir` (atomically, with a marker keyed by their content), so a
second call is instant.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from shared.errors import ModelNotPreparedError
from textfleet.models.prepare import MARKER_NAME, Progress, prepare_dir
from textfleet.models.prepare import is_prepared as prepared_dir
from textfleet.training.defaults import DEFAULT_TASKS, DEFAULTS_DIR
from workers.classifiers.heads import HEAD_FILE, HEAD_META_FILE
from workers.classifiers.ner_head import ENTITY_HEAD_DIR, ENTITY_HEAD_FILE, ENTITY_META_FILE

__all__ = ["MARKER_NAME", "defaults_key", "is_prepared", "prepare_heads"]


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
    return prepared_dir(Path(heads_dir).expanduser(), {"key": defaults_key(source)})


def prepare_heads(heads_dir: Path, *, progress: Progress | None = None, source: Path = DEFAULTS_DIR) -> Path:
    """Copy the shipped heads into `heads_dir` (one subdirectory per task); instant when current."""
    heads_dir = Path(heads_dir).expanduser()

    def copy(tmp: Path) -> None:
        for task in (*DEFAULT_TASKS, ENTITY_HEAD_DIR):
            shutil.copytree(source / task, tmp / task)

    return prepare_dir(
        "heads",
        heads_dir,
        source,
        copy,
        stamp={"key": defaults_key(source)},
        doing=f"Copying the shipped classifier heads to {heads_dir} ...",
        ready="classifier heads ready",
        already=f"classifier heads already prepared in {heads_dir}",
        progress=progress,
    )
