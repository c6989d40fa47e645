"""Sentence features for the heads, and an on-disk cache of them for training.

A head reads the mean-pooled hidden states of a few encoder layers, each L2-normalised, concatenated
(`FeatureSpec.layers`; `(-1,)` is the classic sentence-transformers embedding). Training embeds
every text once and keeps all layers' pooled states in an `EmbeddingCache` (numpy, float16), so
trying another head or layer mix costs no encoder time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from shared.constants import EMBED_BATCH

if TYPE_CHECKING:
    from workers.classifiers.encoder import SentenceEncoder

__all__ = ["EmbeddingCache", "FeatureSpec", "combine", "pooled_states"]


@dataclass(frozen=True)
class FeatureSpec:
    """Which hidden states (0 = token embeddings, -1 = last layer) a head reads, concatenated."""

    layers: tuple[int, ...] = (-1,)

    def dim(self, hidden: int) -> int:
        """The feature width over a `hidden`-wide encoder."""
        return hidden * len(self.layers)


def combine(states: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Features from pooled states `(n, layers, dim)`: the chosen layers, normalised, concatenated."""
    chosen = states[:, list(spec.layers), :].astype(np.float32)
    norms = np.linalg.norm(chosen, axis=2, keepdims=True)
    chosen = chosen / np.clip(norms, 1e-9, None)
    out: np.ndarray = chosen.reshape(chosen.shape[0], -1)
    return out


def pooled_states(encoder: SentenceEncoder, texts: Sequence[str]) -> np.ndarray:
    """Mean-pooled hidden states of every layer, `(len(texts), layers + 1, dim)`, float32."""
    return encoder.encode_layers(list(texts)).to("cpu").numpy()


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()


class EmbeddingCache:
    """Pooled states per text, kept in `directory` as `states.npy` (float16) + `index.json`."""

    def __init__(self, directory: Path, encoder_name: str) -> None:
        self.directory = (
            Path(directory).expanduser()
            / hashlib.sha1(encoder_name.encode(), usedforsecurity=False).hexdigest()[:12]
        )
        self._index: dict[str, int] = {}
        self._states: np.ndarray | None = None
        states_path, index_path = self.directory / "states.npy", self.directory / "index.json"
        if states_path.is_file() and index_path.is_file():
            self._index = json.loads(index_path.read_text())
            self._states = np.load(states_path)

    def states(
        self,
        texts: Sequence[str],
        encoder: Callable[[], SentenceEncoder],
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Pooled states of `texts` in order; embeds (and stores) the ones not cached yet."""
        missing = sorted({t for t in texts if _key(t) not in self._index}, key=len)
        if missing:
            model = encoder()
            new: list[np.ndarray] = []
            for start in range(0, len(missing), EMBED_BATCH):
                batch = missing[start : start + EMBED_BATCH]
                new.append(pooled_states(model, batch).astype(np.float16))
                if progress is not None:
                    progress(min(start + EMBED_BATCH, len(missing)), len(missing))
            block = np.concatenate(new)
            offset = 0 if self._states is None else self._states.shape[0]
            self._states = block if self._states is None else np.concatenate([self._states, block])
            for i, text in enumerate(missing):
                self._index[_key(text)] = offset + i
            self._save()
        assert self._states is not None or not texts
        if not texts:
            return np.zeros((0, 0, 0), dtype=np.float16)
        assert self._states is not None
        return self._states[[self._index[_key(t)] for t in texts]]

    def _save(self) -> None:
        assert self._states is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / "states.tmp.npy"
        np.save(tmp, self._states)
        tmp.replace(self.directory / "states.npy")
        (self.directory / "index.json").write_text(json.dumps(self._index))
