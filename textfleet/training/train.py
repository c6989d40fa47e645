"""Training a head on a frozen encoder: fit, early stopping, calibration, thresholds.

`train_head` takes features and (masked) targets of a fixed train/val split and returns a `Head`:

* class weighting: `pos_weight` per label (multi-label) or inverse-frequency class weights;
* AdamW on minibatches, early stopping on the unweighted validation loss (best epoch kept);
* calibration on the validation split: Platt scaling per label (multi-label), or one temperature
  plus per-class biases (multi-class), so scores behave as probabilities;
* thresholds per label chosen on the validation split: the lowest score whose precision reaches
  `target_precision` (the best-F1 threshold where none does with recall >= `min_recall`).

Unknown labels (NaN targets: a tweet labelled only for hate says nothing about harassment) are
masked out of the loss, the calibration and the thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from workers.classifiers.heads import Head, HeadSpec, build_head

if TYPE_CHECKING:
    import torch

__all__ = ["TrainConfig", "choose_thresholds", "predict", "train_head"]

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of `train_head` (the defaults are what the shipped heads use)."""

    seed: int = 20261201
    epochs: int = 40
    patience: int = 4
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    max_pos_weight: float = 20.0
    target_precision: float = 0.8
    #: Where the target precision leaves less recall than this on val, the best-F1 threshold is used
    #: (noisy labels, e.g. user-level self-harm ratings given to every post, cap precision).
    min_recall: float = 0.3
    #: A label with fewer validation positives than this keeps a threshold of at least 0.5 (its
    #: calibrated score must favour the label): too little evidence to trust a lower cut.
    min_positives: int = 30


def _loss_fn(
    spec: HeadSpec, y: np.ndarray, mask: np.ndarray, config: TrainConfig, *, weighted: bool = True
) -> Any:
    """The masked loss of `spec`; class weights (when `weighted`) come from the training targets."""
    import torch

    if spec.kind == "multiclass":
        counts = y.sum(axis=0).clip(min=1.0)
        raw = np.clip(counts.sum() / (len(counts) * counts), 0.2, 5.0) if weighted else np.ones_like(counts)
        weights = torch.tensor(raw, dtype=torch.float32)

        def multiclass(logits: torch.Tensor, target: torch.Tensor, _mask: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.cross_entropy(logits, target.argmax(dim=1), weight=weights)

        return multiclass
    positives = (y * mask).sum(axis=0)
    negatives = ((1 - y) * mask).sum(axis=0)
    pos_weight = torch.tensor(
        np.clip(negatives / np.clip(positives, 1.0, None), 1.0, config.max_pos_weight if weighted else 1.0),
        dtype=torch.float32,
    )

    def multilabel(logits: torch.Tensor, target: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, target, pos_weight=pos_weight, reduction="none"
        )
        return (loss * known).sum() / known.sum().clamp(min=1.0)

    return multilabel


def _tensors(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, ...]:
    import torch

    return (
        torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
        torch.from_numpy(np.nan_to_num(y, nan=0.0).astype(np.float32)),
        torch.from_numpy(mask.astype(np.float32)),
    )


def train_head(
    spec: HeadSpec,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    config: TrainConfig | None = None,
    *,
    progress: Progress | None = None,
) -> Head:
    """Fit a head on `train` = (features, targets with NaN for unknown), early-stopped and calibrated
    on `val`, with thresholds chosen on `val`. Deterministic for a given config and machine."""
    import torch

    config = config or TrainConfig()
    x_train, y_train = train
    x_val, y_val = val
    m_train, m_val = ~np.isnan(y_train), ~np.isnan(y_val)
    xt, yt, mt = _tensors(x_train, y_train, m_train)
    xv, yv, mv = _tensors(x_val, y_val, m_val)
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    module = build_head(int(xt.shape[1]), spec)
    module.center.copy_(xt.mean(dim=0))  # type: ignore[operator]
    module.scale.copy_(xt.std(dim=0).clamp(min=1e-3))  # type: ignore[operator]
    loss_fn = _loss_fn(spec, np.nan_to_num(y_train), m_train.astype(np.float32), config)
    # Early stopping watches the plain (unweighted) validation loss: the class weights that help
    # rare labels learn would otherwise make a few synthetic positives dominate the stopping rule.
    val_loss_fn = _loss_fn(spec, np.nan_to_num(y_train), m_train.astype(np.float32), config, weighted=False)
    optimizer = torch.optim.AdamW(
        module.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    best_loss, best_state, best_epoch, stale, epoch = math.inf, None, 0, 0, 0
    for epoch in range(1, config.epochs + 1):
        module.train()
        order = torch.randperm(xt.shape[0], generator=generator)
        for start in range(0, len(order), config.batch_size):
            rows = order[start : start + config.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(module(xt[rows]), yt[rows], mt[rows])
            loss.backward()
            optimizer.step()
        module.eval()
        with torch.inference_mode():
            val_loss = float(val_loss_fn(module(xv), yv, mv))
        if progress is not None:
            progress(epoch, config.epochs, f"val loss {val_loss:.4f}")
        if val_loss < best_loss - 1e-4:
            best_loss, best_epoch, stale = val_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        else:
            stale += 1
            if stale >= config.patience:
                break
    assert best_state is not None
    module.load_state_dict(best_state)
    module.eval()
    _calibrate(spec, module, xv, yv, mv, config.min_positives)
    head = Head(spec=spec, dim=int(xt.shape[1]), module=module)
    if spec.kind == "multilabel":
        head.thresholds = choose_thresholds(
            predict(head, x_val), y_val, spec.labels, config.target_precision, config.min_recall
        )
        for j, label in enumerate(spec.labels):
            if np.nansum(y_val[:, j]) < config.min_positives:
                head.thresholds[label] = max(head.thresholds[label], 0.5)
    head.meta = {
        "best_epoch": best_epoch,
        "epochs_run": epoch,
        "val_loss": round(best_loss, 5),
        "train_examples": int(xt.shape[0]),
        "val_examples": int(xv.shape[0]),
        "config": config.__dict__,
    }
    return head


def _calibrate(
    spec: HeadSpec, module: Any, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, min_positives: int
) -> None:
    """Fit the calibration buffers on the validation split (LBFGS on the unweighted NLL).

    A multi-label label with fewer than `min_positives` validation positives stays uncalibrated
    (scale 1, bias 0): a handful of positives cannot support a fit, which would squash its scores
    towards the validation mix's base rate."""
    import torch

    with torch.inference_mode():
        logits = module(x).detach()
    labels = logits.shape[1]
    if spec.kind == "multiclass":
        log_scale = torch.zeros(1, requires_grad=True)
    else:
        log_scale = torch.zeros(labels, requires_grad=True)
    bias = torch.zeros(labels, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_scale, bias], lr=0.1, max_iter=200)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        z = logits.clone() * log_scale.exp() + bias
        if spec.kind == "multiclass":
            loss = torch.nn.functional.cross_entropy(z, y.argmax(dim=1))
        else:
            raw = torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none")
            loss = (raw * mask).sum() / mask.sum().clamp(min=1.0) + 1e-3 * (log_scale**2).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]
    with torch.no_grad():
        scale, shift = log_scale.exp().expand(labels).clone(), bias.clone()
        if spec.kind == "multilabel":
            scarce = (y * mask).sum(dim=0) < min_positives
            scale[scarce], shift[scarce] = 1.0, 0.0
        module.cal_scale.copy_(scale)
        module.cal_bias.copy_(shift)


def predict(head: Head, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Calibrated probabilities of `head` for features `x`, as a numpy array (n, labels)."""
    import torch

    parts = [
        head.probabilities(torch.from_numpy(np.ascontiguousarray(x[i : i + batch], dtype=np.float32))).numpy()
        for i in range(0, len(x), batch)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, len(head.spec.labels)))


def choose_thresholds(
    probs: np.ndarray,
    y: np.ndarray,
    labels: tuple[str, ...],
    target_precision: float,
    min_recall: float = 0.0,
) -> dict[str, float]:
    """Per label, the lowest score reaching `target_precision` on (probs, y); NaN targets ignored.

    Where no threshold reaches it with at least `min_recall`, the best-F1 threshold; 0.5 for a
    label without positives."""
    from sklearn.metrics import precision_recall_curve

    out: dict[str, float] = {}
    for j, label in enumerate(labels):
        known = ~np.isnan(y[:, j])
        truth, score = y[known, j], probs[known, j]
        if truth.sum() == 0 or truth.sum() == len(truth):
            out[label] = 0.5
            continue
        precision, recall, cuts = precision_recall_curve(truth, score)
        precision, recall = precision[:-1], recall[:-1]
        reaching = np.flatnonzero((precision >= target_precision) & (recall >= min_recall))
        if reaching.size:
            out[label] = round(float(cuts[reaching[0]]), 4)
        else:
            f1 = 2 * precision * recall / np.clip(precision + recall, 1e-12, None)
            out[label] = round(float(cuts[int(np.argmax(f1))]), 4)
    return out
