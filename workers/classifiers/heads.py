"""Classifier heads: small PyTorch modules over the encoder's sentence embedding.

* moderation: 13 independent sigmoid outputs, one per OpenAI moderation category
  (`shared.settings.MODERATION_CATEGORIES`).
* risk: independent sigmoid outputs over `RISK_LABELS` (fraud and financial risk signals).
* sentiment: a 3-way softmax over `SENTIMENT_LABELS`.

Each head standardises the embedding (a mean/scale fitted on the training embeddings, stored as
buffers) and applies one hidden layer and a linear output. The three heads are saved together as
one safetensors file (`heads.safetensors`) plus a JSON description (`heads.json`: label names,
encoder, version) in `settings.heads_path`. torch is imported lazily.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from shared.errors import ModelNotPreparedError
from shared.settings import MODERATION_CATEGORIES

if TYPE_CHECKING:
    import torch

__all__ = [
    "HEADS_FILE",
    "HEADS_FORMAT_VERSION",
    "HEADS_META_FILE",
    "RISK_LABELS",
    "RISK_LABEL_DESCRIPTIONS",
    "SENTIMENT_LABELS",
    "HeadKind",
    "HeadSet",
    "HeadSpec",
    "build_head",
    "head_specs",
]

#: What each risk label means. The risk score of a text is its largest label probability.
RISK_LABEL_DESCRIPTIONS: dict[str, str] = {
    "fraud_scam": "Scams and fraud: fake prizes, lottery or inheritance wins, advance-fee requests, "
    "too-good-to-be-true investments, romance scams, pressure to pay by gift card or wire.",
    "phishing": "Attempts to obtain credentials or card details: fake bank/parcel/tax notices with "
    "links, requests to 'verify' an account, reply with a code or a PIN.",
    "financial_distress": "The writer is in financial trouble: cannot pay rent or bills, debt "
    "collectors, overdrafts, missed loan payments, looking for payday loans.",
    "account_takeover": "Signs that an account is being or has been taken over: unrecognised logins, "
    "changed passwords or e-mail, SIM swaps, one-time codes the user did not request.",
    "money_laundering": "Moving or disguising money of unclear origin: money mules, splitting cash "
    "deposits to stay under limits, 'receive and forward' payment jobs, layering through crypto.",
}
#: Risk labels in output order.
RISK_LABELS: tuple[str, ...] = tuple(RISK_LABEL_DESCRIPTIONS)
#: Sentiment labels in output order.
SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")

HEADS_FILE = "heads.safetensors"
HEADS_META_FILE = "heads.json"
#: Bump when the stored layout of the heads changes.
HEADS_FORMAT_VERSION = 1

HeadKind = Literal["multilabel", "multiclass"]


@dataclass(frozen=True)
class HeadSpec:
    """One head: its name (the task), its kind and its label names in output order."""

    name: str
    kind: HeadKind
    labels: tuple[str, ...]
    hidden: int = 128


def head_specs() -> dict[str, HeadSpec]:
    """The three heads textfleet trains, keyed by task name."""
    return {
        "moderate": HeadSpec("moderate", "multilabel", MODERATION_CATEGORIES),
        "risk": HeadSpec("risk", "multilabel", RISK_LABELS),
        "sentiment": HeadSpec("sentiment", "multiclass", SENTIMENT_LABELS),
    }


def build_head(dim: int, spec: HeadSpec) -> torch.nn.Module:
    """A fresh (untrained) head module for `spec` over `dim`-dimensional embeddings."""
    import torch
    from torch import nn

    class _Head(nn.Module):
        """Standardise, one hidden layer, linear output (logits)."""

        center: torch.Tensor
        scale: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("center", torch.zeros(dim))
            self.register_buffer("scale", torch.ones(dim))
            self.hidden = nn.Linear(dim, spec.hidden)
            self.dropout = nn.Dropout(0.1)
            self.out = nn.Linear(spec.hidden, len(spec.labels))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z = (x - self.center) / self.scale
            return self.out(self.dropout(nn.functional.gelu(self.hidden(z))))  # type: ignore[no-any-return]

    return _Head()


@dataclass
class HeadSet:
    """The trained heads of all tasks, with what they were trained on."""

    dim: int
    specs: dict[str, HeadSpec]
    modules: dict[str, torch.nn.Module]
    meta: dict[str, Any] = field(default_factory=dict)

    def probabilities(self, task: str, embeddings: torch.Tensor) -> torch.Tensor:
        """Per-label probabilities (sigmoid for multi-label heads, softmax for multi-class ones)."""
        import torch

        spec = self.specs[task]
        module = self.modules[task]
        with torch.inference_mode():
            logits = module(embeddings)
            if spec.kind == "multiclass":
                return torch.softmax(logits, dim=-1)
            return torch.sigmoid(logits)

    def to(self, device: str) -> HeadSet:
        """Move every head to `device` (in place) and return self."""
        for module in self.modules.values():
            module.to(device)
        return self

    # --- Storage --------------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write `heads.safetensors` and `heads.json` into `directory` (which must exist)."""
        from safetensors.torch import save_file

        tensors: dict[str, torch.Tensor] = {}
        for task, module in self.modules.items():
            for key, value in module.state_dict().items():
                tensors[f"{task}.{key}"] = value.detach().to("cpu").contiguous()
        save_file(tensors, str(directory / HEADS_FILE), metadata={"format": "textfleet-heads"})
        meta = {
            **self.meta,
            "format_version": HEADS_FORMAT_VERSION,
            "dim": self.dim,
            "heads": {
                task: {"kind": spec.kind, "labels": list(spec.labels), "hidden": spec.hidden}
                for task, spec in self.specs.items()
            },
        }
        (directory / HEADS_META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, directory: Path, *, device: str = "cpu") -> HeadSet:
        """Read heads written by `save`. Raises ModelNotPreparedError when they are missing or stale."""
        from safetensors.torch import load_file

        meta_path = directory / HEADS_META_FILE
        weights_path = directory / HEADS_FILE
        if not meta_path.is_file() or not weights_path.is_file():
            raise ModelNotPreparedError(
                f"the classifier heads are not in {directory}; run `textfleet models prepare`"
            )
        meta = json.loads(meta_path.read_text())
        if meta.get("format_version") != HEADS_FORMAT_VERSION:
            raise ModelNotPreparedError(
                f"the classifier heads in {directory} have format {meta.get('format_version')!r}, "
                f"this version reads {HEADS_FORMAT_VERSION}; run `textfleet models prepare` again"
            )
        dim = int(meta["dim"])
        tensors = load_file(str(weights_path))
        specs: dict[str, HeadSpec] = {}
        modules: dict[str, torch.nn.Module] = {}
        for task, info in meta["heads"].items():
            spec = HeadSpec(task, info["kind"], tuple(info["labels"]), int(info["hidden"]))
            module = build_head(dim, spec)
            prefix = f"{task}."
            module.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
            module.eval()
            module.to(device)
            specs[task] = spec
            modules[task] = module
        return cls(dim=dim, specs=specs, modules=modules, meta=meta)
