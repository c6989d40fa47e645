"""Classifier heads: small calibrated PyTorch MLPs over the encoder's pooled hidden states.

A head is a model directory written by `textfleet train` (`textfleet.training.train`):

* `head.safetensors`: the weights (feature mean/scale, one hidden layer, output, calibration);
* `head.json`: task, kind (multilabel: one sigmoid per label; multiclass: softmax), label names,
  which encoder layers it reads (`features.FeatureSpec`), thresholds chosen on the validation split,
  and what it was trained on;
* `metrics.json` and `MODEL_CARD.md`: measured figures and the card.

Scores are calibrated: each label's logit is scaled and shifted (Platt scaling; one shared scale
for softmax heads) by parameters fitted on the validation split. `HeadSet` is the heads of the
default tasks (moderate, risk, sentiment), one subdirectory each. torch is imported lazily.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from shared.errors import ModelNotPreparedError
from shared.settings import MODERATION_CATEGORIES
from workers.classifiers.features import FeatureSpec

if TYPE_CHECKING:
    import torch

__all__ = [
    "HEAD_FILE",
    "HEAD_FORMAT_VERSION",
    "HEAD_META_FILE",
    "RISK_LABELS",
    "RISK_LABEL_DESCRIPTIONS",
    "SENTIMENT_LABELS",
    "Head",
    "HeadKind",
    "HeadSet",
    "HeadSpec",
    "build_head",
    "head_specs",
    "load_weights",
    "read_head_meta",
    "write_head_files",
]

_M = TypeVar("_M", bound="torch.nn.Module")

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

HEAD_FILE = "head.safetensors"
HEAD_META_FILE = "head.json"
#: Bump when the stored layout of a head changes.
HEAD_FORMAT_VERSION = 2

HeadKind = Literal["multilabel", "multiclass"]


@dataclass(frozen=True)
class HeadSpec:
    """A head's shape: task, kind, label names in output order, hidden width and input features."""

    name: str
    kind: HeadKind
    labels: tuple[str, ...]
    hidden: int = 256
    features: FeatureSpec = field(default_factory=FeatureSpec)
    dropout: float = 0.2


def head_specs() -> dict[str, HeadSpec]:
    """The default heads, keyed by task name (their label sets are part of the API contract); one per
    classifier task of the registry (`workers.classifiers.suite.CLASSIFIER_TASKS`)."""
    specs = (
        HeadSpec("moderate", "multilabel", MODERATION_CATEGORIES),
        HeadSpec("risk", "multilabel", RISK_LABELS),
        HeadSpec("sentiment", "multiclass", SENTIMENT_LABELS),
    )
    return {spec.name: spec for spec in specs}


def build_head(dim: int, spec: HeadSpec) -> torch.nn.Module:
    """A fresh (untrained) head module for `spec` over `dim`-dimensional features."""
    import torch
    from torch import nn

    class _Head(nn.Module):
        """Standardise, one hidden layer, linear output; `calibrated` applies the fitted Platt scaling."""

        center: torch.Tensor
        scale: torch.Tensor
        cal_scale: torch.Tensor
        cal_bias: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("center", torch.zeros(dim))
            self.register_buffer("scale", torch.ones(dim))
            self.register_buffer("cal_scale", torch.ones(len(spec.labels)))
            self.register_buffer("cal_bias", torch.zeros(len(spec.labels)))
            self.hidden = nn.Linear(dim, spec.hidden)
            self.dropout = nn.Dropout(spec.dropout)
            self.out = nn.Linear(spec.hidden, len(spec.labels))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z = (x - self.center) / self.scale
            return self.out(self.dropout(nn.functional.gelu(self.hidden(z))))  # type: ignore[no-any-return]

        def calibrated(self, x: torch.Tensor) -> torch.Tensor:
            return self.forward(x) * self.cal_scale + self.cal_bias

    return _Head()


@dataclass
class Head:
    """One trained head with its thresholds and description (`head.json`)."""

    spec: HeadSpec
    dim: int
    module: torch.nn.Module
    thresholds: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def probabilities(self, features: torch.Tensor) -> torch.Tensor:
        """Calibrated per-label probabilities (sigmoid for multi-label heads, softmax otherwise)."""
        import torch

        with torch.inference_mode():
            logits = self.module.calibrated(features)  # type: ignore[operator]
            if self.spec.kind == "multiclass":
                return torch.softmax(logits, dim=-1)
            return torch.sigmoid(logits)

    def save(self, directory: Path) -> None:
        """Write `head.safetensors` and `head.json` into `directory` (created if needed)."""
        meta = {
            **self.meta,
            "format_version": HEAD_FORMAT_VERSION,
            "task": self.spec.name,
            "kind": self.spec.kind,
            "labels": list(self.spec.labels),
            "hidden": self.spec.hidden,
            "dropout": self.spec.dropout,
            "layers": list(self.spec.features.layers),
            "dim": self.dim,
            "thresholds": self.thresholds,
        }
        write_head_files(directory, self.module, HEAD_FILE, HEAD_META_FILE, "textfleet-head", meta)

    @classmethod
    def load(cls, directory: Path, *, device: str = "cpu") -> Head:
        """Read a head written by `save`. Raises ModelNotPreparedError when missing or stale."""
        meta = read_head_meta(
            directory,
            HEAD_FILE,
            HEAD_META_FILE,
            HEAD_FORMAT_VERSION,
            what="classifier head",
            missing_hint="run `textfleet models prepare` (defaults) or `textfleet train` (custom models)",
        )
        spec = HeadSpec(
            str(meta["task"]),
            meta["kind"],
            tuple(meta["labels"]),
            int(meta["hidden"]),
            FeatureSpec(tuple(int(i) for i in meta["layers"])),
            float(meta.get("dropout", 0.0)),
        )
        module = load_weights(build_head(int(meta["dim"]), spec), directory / HEAD_FILE, device)
        thresholds = {str(k): float(v) for k, v in meta.get("thresholds", {}).items()}
        return cls(spec=spec, dim=int(meta["dim"]), module=module, thresholds=thresholds, meta=meta)

    def to(self, device: str) -> Head:
        """Move the head to `device` (in place) and return self."""
        self.module.to(device)
        return self


def write_head_files(
    directory: Path,
    module: torch.nn.Module,
    weights_file: str,
    meta_file: str,
    format_tag: str,
    meta: dict[str, Any],
) -> None:
    """Write a head's weights (safetensors) and its JSON meta into `directory` (created if needed)."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    save_file(tensors, str(directory / weights_file), metadata={"format": format_tag})
    (directory / meta_file).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def read_head_meta(
    directory: Path, weights_file: str, meta_file: str, version: int, *, what: str, missing_hint: str
) -> dict[str, Any]:
    """The JSON meta of the head written into `directory` by `write_head_files`. Raises
    ModelNotPreparedError when its files are missing or its format is not `version`."""
    meta_path = directory / meta_file
    if not meta_path.is_file() or not (directory / weights_file).is_file():
        raise ModelNotPreparedError(f"no {what} in {directory}; {missing_hint}")
    meta: dict[str, Any] = json.loads(meta_path.read_text())
    if meta.get("format_version") != version:
        raise ModelNotPreparedError(
            f"the {what} in {directory} has format {meta.get('format_version')!r}, "
            f"this version reads {version}; run `textfleet models prepare` again"
        )
    return meta


def load_weights(module: _M, weights_path: Path, device: str) -> _M:
    """`module` with the weights of `weights_path`, in eval mode, on `device`."""
    from safetensors.torch import load_file

    module.load_state_dict(load_file(str(weights_path)))
    module.eval()
    module.to(device)
    return module


@dataclass
class HeadSet:
    """The heads of several tasks over one encoder, keyed by task name."""

    heads: dict[str, Head]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def specs(self) -> dict[str, HeadSpec]:
        """Each head's spec, keyed by task."""
        return {task: head.spec for task, head in self.heads.items()}

    def layers(self) -> tuple[int, ...]:
        """Every encoder layer any head reads, sorted (what one forward pass must pool)."""
        return tuple(sorted({i for head in self.heads.values() for i in head.spec.features.layers}))

    def to(self, device: str) -> HeadSet:
        """Move every head to `device` (in place) and return self."""
        for head in self.heads.values():
            head.to(device)
        return self

    @classmethod
    def load(cls, directory: Path, *, device: str = "cpu") -> HeadSet:
        """The heads in the subdirectories of `directory` (one per task)."""
        directory = Path(directory)
        subdirs = (
            sorted(p for p in directory.iterdir() if (p / HEAD_META_FILE).is_file())
            if directory.is_dir()
            else []
        )
        if not subdirs:
            raise ModelNotPreparedError(
                f"the classifier heads are not in {directory}; run `textfleet models prepare`"
            )
        heads = {p.name: Head.load(p, device=device) for p in subdirs}
        return cls(heads={head.spec.name: head for head in heads.values()})
