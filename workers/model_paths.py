"""Whether a configured model names a local directory or a Hugging Face id: one rule for every engine.

Hugging Face ids are `name` or `org/name`; anything path-like (absolute, `~`, `.`, more than one
`/`) or existing on disk is a directory.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["is_local_path"]


def is_local_path(model: str) -> bool:
    """Whether `model` names a local directory rather than a Hugging Face id."""
    return model.startswith(("/", "~", ".")) or model.count("/") > 1 or Path(model).expanduser().exists()
