"""Custom models: heads trained with `textfleet train`, registered under `models_dir/custom/<name>`.

`list_models` is what `textfleet models list` shows; `ModelRegistry` loads a custom head on first
use and keeps it warm (thread-safe). A model must be a multi-label head trained on the encoder the
workers run; anything else is refused with a clear error.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from shared.errors import InvalidInputError
from workers.classifiers.heads import HEAD_META_FILE, Head

if TYPE_CHECKING:
    from workers.classifiers.encoder import SentenceEncoder

__all__ = ["CUSTOM_DIRNAME", "MODEL_NAME_PATTERN", "ModelRegistry", "custom_dir", "list_models"]

log = structlog.get_logger(__name__)

#: Subdirectory of `models_dir` holding custom models, one directory per model name.
CUSTOM_DIRNAME = "custom"
#: What a custom model name may look like (also its directory name).
MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"


def custom_dir(models_dir: Path) -> Path:
    """Where custom models are registered."""
    return Path(models_dir).expanduser() / CUSTOM_DIRNAME


def list_models(models_dir: Path, heads_dir: Path) -> list[dict[str, Any]]:
    """Default heads and custom models: name, kind, task, labels, trained_on, where."""
    out = []
    for origin, root in (("default", Path(heads_dir).expanduser()), ("custom", custom_dir(models_dir))):
        if not root.is_dir():
            continue
        for meta_path in sorted(root.glob(f"*/{HEAD_META_FILE}")):
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                continue
            out.append(
                {
                    "name": meta_path.parent.name,
                    "origin": origin,
                    "task": meta.get("task"),
                    "kind": meta.get("kind"),
                    "labels": meta.get("labels", []),
                    "encoder": meta.get("encoder"),
                    "path": str(meta_path.parent),
                }
            )
    return out


class ModelRegistry:
    """Custom heads by name, loaded on first use and kept (the encoder is shared with the defaults)."""

    def __init__(self, models_dir: Path, encoder: SentenceEncoder) -> None:
        self.root = custom_dir(models_dir)
        self.encoder = encoder
        self._heads: dict[str, Head] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Head:
        """The custom head `name`. Raises InvalidInputError (code unknown_model) when unusable."""
        with self._lock:
            head = self._heads.get(name)
            if head is None:
                head = self._load(name)
                self._heads[name] = head
            return head

    def _load(self, name: str) -> Head:
        def refuse(why: str) -> InvalidInputError:
            return InvalidInputError(f"model {name!r} {why}", field="params.model", code="unknown_model")

        if not re.fullmatch(MODEL_NAME_PATTERN, name):
            raise refuse(f"is not a valid model name ({MODEL_NAME_PATTERN})")
        directory = self.root / name
        if not (directory / HEAD_META_FILE).is_file():
            known = sorted(p.parent.name for p in self.root.glob(f"*/{HEAD_META_FILE}"))
            raise refuse(
                f"is not registered in {self.root}; known: {known or 'none'} (see `textfleet models list`)"
            )
        head = Head.load(directory, device=self.encoder.device)
        if head.spec.kind != "multilabel":
            raise refuse("is a multi-class model; moderation needs a multi-label one")
        expected = head.spec.features.dim(self.encoder.dim)
        if head.dim != expected or max(head.spec.features.layers) >= self.encoder.layer_count:
            raise refuse(f"was trained on another encoder ({head.meta.get('encoder')!r})")
        log.info("classifiers.custom_model_loaded", model=name, labels=len(head.spec.labels))
        return head
