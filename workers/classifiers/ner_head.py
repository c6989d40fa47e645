"""The token-classification head of the `entities` task: BIO tags over the shared encoder's tokens.

A small PyTorch module over frozen encoder features: each token's hidden states of a few layers
(each L2-normalised, concatenated) plus a handful of word-shape features computed from the raw
text (the encoder is uncased, so capitalisation would otherwise be lost), standardised, then one
width-3 convolution over neighbouring tokens, GELU, and a linear layer to the BIO tags.

Stored beside the default heads as `entities/` (`ner.safetensors` + `ner.json`, plus
`metrics.json` and `MODEL_CARD.md`), written by `textfleet.training.ner`. The file names differ
from the sentence heads' `head.json` so `HeadSet.load` leaves the directory to this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workers.classifiers.heads import load_weights, read_head_meta, write_head_files
from workers.classifiers.ner_spans import bio_tags

if TYPE_CHECKING:
    import torch

__all__ = [
    "ENTITY_HEAD_DIR",
    "ENTITY_HEAD_FILE",
    "ENTITY_HEAD_FORMAT_VERSION",
    "ENTITY_META_FILE",
    "MODEL_ENTITY_TYPES",
    "EntityHead",
    "EntityHeadSpec",
    "build_entity_head",
]

#: Subdirectory of the heads directory holding the entity head.
ENTITY_HEAD_DIR = "entities"
ENTITY_HEAD_FILE = "ner.safetensors"
ENTITY_META_FILE = "ner.json"
#: Bump when the stored layout of the entity head changes.
ENTITY_HEAD_FORMAT_VERSION = 1
#: The types the model tags (rules add MONEY, DATE, EMAIL, PHONE, URL).
MODEL_ENTITY_TYPES: tuple[str, ...] = ("PERSON", "ORG", "LOCATION", "MISC")


@dataclass(frozen=True)
class EntityHeadSpec:
    """The head's shape: entity types, encoder layers read per token, shape features, hidden width."""

    types: tuple[str, ...] = MODEL_ENTITY_TYPES
    layers: tuple[int, ...] = (4, 5, 6)
    shape_features: int = 8
    hidden: int = 256
    dropout: float = 0.2

    @property
    def tags(self) -> tuple[str, ...]:
        """BIO tags in output order."""
        return bio_tags(self.types)

    def dim(self, hidden: int) -> int:
        """The input width over a `hidden`-wide encoder."""
        return hidden * len(self.layers) + self.shape_features


def build_entity_head(dim: int, spec: EntityHeadSpec) -> torch.nn.Module:
    """A fresh (untrained) head over `dim`-wide token features; input (batch, tokens, dim) and a
    (batch, tokens) mask of real tokens; output (batch, tokens, tags) logits."""
    import torch
    from torch import nn

    class _EntityHead(nn.Module):
        center: torch.Tensor
        scale: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("center", torch.zeros(dim))
            self.register_buffer("scale", torch.ones(dim))
            self.conv = nn.Conv1d(dim, spec.hidden, kernel_size=3, padding=1)
            self.dropout = nn.Dropout(spec.dropout)
            self.out = nn.Linear(spec.hidden, len(spec.tags))

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            z = (x - self.center) / self.scale * mask.unsqueeze(-1)
            h = nn.functional.gelu(self.conv(z.transpose(1, 2))).transpose(1, 2)
            return self.out(self.dropout(h))  # type: ignore[no-any-return]

    return _EntityHead()


@dataclass
class EntityHead:
    """A trained entity head and its description (`ner.json`)."""

    spec: EntityHeadSpec
    dim: int
    module: torch.nn.Module
    meta: dict[str, Any] = field(default_factory=dict)

    def probabilities(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Tag probabilities (batch, tokens, tags) of token features (batch, tokens, dim)."""
        import torch

        with torch.inference_mode():
            return torch.softmax(self.module(features, mask), dim=-1)

    def save(self, directory: Path) -> None:
        """Write `ner.safetensors` and `ner.json` into `directory` (created if needed)."""
        meta = {
            **self.meta,
            "format_version": ENTITY_HEAD_FORMAT_VERSION,
            "task": "entities",
            "types": list(self.spec.types),
            "tags": list(self.spec.tags),
            "layers": list(self.spec.layers),
            "shape_features": self.spec.shape_features,
            "hidden": self.spec.hidden,
            "dropout": self.spec.dropout,
            "dim": self.dim,
        }
        write_head_files(
            directory, self.module, ENTITY_HEAD_FILE, ENTITY_META_FILE, "textfleet-entity-head", meta
        )

    @classmethod
    def load(cls, directory: Path, *, device: str = "cpu") -> EntityHead:
        """Read a head written by `save`. Raises ModelNotPreparedError when missing or stale."""
        meta = read_head_meta(
            directory,
            ENTITY_HEAD_FILE,
            ENTITY_META_FILE,
            ENTITY_HEAD_FORMAT_VERSION,
            what="entity head",
            missing_hint="run `textfleet models prepare` (or `make models-train` to retrain it)",
        )
        spec = EntityHeadSpec(
            tuple(str(t) for t in meta["types"]),
            tuple(int(i) for i in meta["layers"]),
            int(meta["shape_features"]),
            int(meta["hidden"]),
            float(meta.get("dropout", 0.0)),
        )
        module = load_weights(build_entity_head(int(meta["dim"]), spec), directory / ENTITY_HEAD_FILE, device)
        return cls(spec=spec, dim=int(meta["dim"]), module=module, meta=meta)

    def to(self, device: str) -> EntityHead:
        """Move the head to `device` (in place) and return self."""
        self.module.to(device)
        return self
