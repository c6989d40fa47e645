"""Train the classifier heads from the seed examples in `workers.classifiers.seeds`.

The encoder stays frozen: every seed text is embedded once, then each head (a small MLP, see
`heads.build_head`) is fitted full-batch with AdamW for a few hundred deterministic steps. The whole
run takes seconds on a CPU. `prepare_heads` caches its output with a marker keyed by the seed data,
the encoder and the training recipe, so a second call returns at once; the output directory is built
beside the target and renamed into place, so readers never see a half-written one.
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
from typing import TYPE_CHECKING, Any

import structlog

from workers.classifiers import seeds
from workers.classifiers.heads import HEADS_FILE, HEADS_META_FILE, HeadSet, HeadSpec, build_head, head_specs

if TYPE_CHECKING:
    import torch

    from workers.classifiers.encoder import SentenceEncoder

__all__ = [
    "MARKER_NAME",
    "TRAINING_VERSION",
    "TrainingData",
    "heads_key",
    "is_prepared",
    "prepare_heads",
    "train_heads",
    "training_data",
]

log = structlog.get_logger(__name__)

Progress = Callable[[str], None]

#: Written last into a prepared heads directory; its presence (with the right key) means "done".
MARKER_NAME = ".textfleet-prepared.json"
#: Bump when the recipe below changes, so prepared heads are retrained.
TRAINING_VERSION = 1
_SEED = 20240611
_STEPS = 300
_LEARNING_RATE = 3e-3
_WEIGHT_DECAY = 1e-2
_MAX_POS_WEIGHT = 4.0
_EMBED_BATCH = 64

TrainingData = dict[str, tuple[list[str], list[list[float]]]]


def training_data() -> TrainingData:
    """Texts and targets per task: multi-hot rows for moderate/risk, one-hot rows for sentiment."""
    specs = head_specs()
    out: TrainingData = {}

    # Moderation: seed categories (with parents) vs. benign, risk and sentiment texts.
    mod_labels = specs["moderate"].labels
    mod: dict[str, set[str]] = {}
    for category, texts in seeds.MODERATION_SEEDS.items():
        for text in texts:
            names = mod.setdefault(text, set())
            names.add(category)
            names.update(seeds.MODERATION_PARENTS.get(category, ()))
    negatives = [*seeds.BENIGN, *_flatten(seeds.RISK_SEEDS), *_flatten(seeds.SENTIMENT_SEEDS)]
    for text in negatives:
        mod.setdefault(text, set())
    out["moderate"] = _multi_hot(mod, mod_labels)

    # Risk: seed labels vs. benign, sentiment and moderation texts (illicit ones left out: how to
    # launder money is both illicit and a money-laundering risk).
    risk_labels = specs["risk"].labels
    risk: dict[str, set[str]] = {}
    for label, texts in seeds.RISK_SEEDS.items():
        for text in texts:
            risk.setdefault(text, set()).add(label)
    moderation_negatives = [
        text
        for category, texts in seeds.MODERATION_SEEDS.items()
        if not category.startswith("illicit")
        for text in texts
    ]
    for text in [*seeds.BENIGN, *_flatten(seeds.SENTIMENT_SEEDS), *moderation_negatives]:
        risk.setdefault(text, set())
    out["risk"] = _multi_hot(risk, risk_labels)

    # Sentiment: the three seed lists only.
    sent_labels = specs["sentiment"].labels
    sentiment = {text: {label} for label, texts in seeds.SENTIMENT_SEEDS.items() for text in texts}
    out["sentiment"] = _multi_hot(sentiment, sent_labels)
    return out


def _flatten(groups: dict[str, list[str]]) -> list[str]:
    return [text for texts in groups.values() for text in texts]


def _multi_hot(rows: dict[str, set[str]], labels: tuple[str, ...]) -> tuple[list[str], list[list[float]]]:
    texts = sorted(rows)
    targets = [[1.0 if label in rows[text] else 0.0 for label in labels] for text in texts]
    return texts, targets


def _fit(spec: HeadSpec, x: torch.Tensor, y: torch.Tensor) -> torch.nn.Module:
    """Fit one head on embeddings `x` and targets `y` (both CPU float32)."""
    import torch

    torch.manual_seed(_SEED)
    module = build_head(int(x.shape[1]), spec)
    center = x.mean(dim=0)
    scale = x.std(dim=0).clamp(min=1e-3)
    module.center.copy_(center)  # type: ignore[operator]
    module.scale.copy_(scale)  # type: ignore[operator]
    if spec.kind == "multiclass":
        target = y.argmax(dim=1)
        loss_fn: Callable[[torch.Tensor], torch.Tensor] = lambda logits: torch.nn.functional.cross_entropy(  # noqa: E731
            logits, target
        )
    else:
        positives = y.sum(dim=0)
        pos_weight = ((y.shape[0] - positives) / positives.clamp(min=1.0)).clamp(max=_MAX_POS_WEIGHT)
        loss_fn = lambda logits: torch.nn.functional.binary_cross_entropy_with_logits(  # noqa: E731
            logits, y, pos_weight=pos_weight
        )
    optimizer = torch.optim.AdamW(module.parameters(), lr=_LEARNING_RATE, weight_decay=_WEIGHT_DECAY)
    module.train()
    for _ in range(_STEPS):
        optimizer.zero_grad()
        loss = loss_fn(module(x))
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    module.eval()
    log.debug("heads.fitted", head=spec.name, examples=int(x.shape[0]), loss=round(loss.detach().item(), 4))
    return module


def train_heads(encoder: SentenceEncoder, *, progress: Progress | None = None) -> HeadSet:
    """Embed the seed texts with `encoder` and fit every head. Deterministic on a given machine."""
    import torch

    data = training_data()
    all_texts = sorted({text for texts, _ in data.values() for text in texts})
    _say(progress, f"embedding {len(all_texts)} seed texts")
    chunks = [
        encoder.encode(all_texts[i : i + _EMBED_BATCH]).to("cpu")
        for i in range(0, len(all_texts), _EMBED_BATCH)
    ]
    embedded = torch.cat(chunks)
    index = {text: i for i, text in enumerate(all_texts)}
    specs = head_specs()
    modules: dict[str, torch.nn.Module] = {}
    # The heads are tiny: one thread fits them fastest (several threads mostly contend).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            for task, (texts, targets) in data.items():
                _say(progress, f"training the {task} head on {len(texts)} examples")
                x = embedded[[index[text] for text in texts]]
                y = torch.tensor(targets, dtype=torch.float32)
                modules[task] = _fit(specs[task], x, y)
    finally:
        torch.set_num_threads(threads)
    return HeadSet(dim=encoder.dim, specs=specs, modules=modules)


def heads_key(encoder_path: str) -> str:
    """The cache key of prepared heads: seed data, encoder and training recipe."""
    raw = json.dumps(
        {"seeds": seeds.seed_hash(), "encoder": encoder_path, "training": TRAINING_VERSION}, sort_keys=True
    )
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def is_prepared(heads_dir: Path, encoder_path: str) -> bool:
    """Whether `heads_dir` holds heads trained from the current seeds on `encoder_path`."""
    marker = heads_dir / MARKER_NAME
    try:
        stamp: dict[str, Any] = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return (
        stamp.get("key") == heads_key(encoder_path)
        and (heads_dir / HEADS_FILE).is_file()
        and (heads_dir / HEADS_META_FILE).is_file()
    )


def prepare_heads(
    encoder_path: str,
    heads_dir: Path,
    *,
    progress: Progress | None = None,
    device: str = "auto",
) -> Path:
    """Train the heads on the encoder at `encoder_path` into `heads_dir`; instant when already done.

    Returns `heads_dir`. Raises ModelNotPreparedError when the encoder cannot be loaded.
    """
    from workers.classifiers.encoder import SentenceEncoder

    heads_dir = Path(heads_dir).expanduser()
    if is_prepared(heads_dir, encoder_path):
        _say(progress, f"classifier heads already prepared in {heads_dir}")
        return heads_dir
    started = time.perf_counter()
    _say(progress, f"loading the encoder {encoder_path}")
    encoder = SentenceEncoder.load(encoder_path, device=device)
    heads = train_heads(encoder, progress=progress)
    seconds = time.perf_counter() - started
    heads.meta = {
        "encoder": encoder_path,
        "seed_hash": seeds.seed_hash(),
        "training_version": TRAINING_VERSION,
        "train_seconds": round(seconds, 3),
    }
    heads_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{heads_dir.name}.tmp-", dir=heads_dir.parent))
    try:
        heads.save(tmp)
        stamp = {"key": heads_key(encoder_path), **heads.meta, "created": time.time()}
        (tmp / MARKER_NAME).write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
        # mkdtemp makes a private (0700) directory; the heads are read by other users/processes too.
        tmp.chmod(0o755)
        for path in tmp.iterdir():
            path.chmod(0o644)
        _swap_into_place(tmp, heads_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("heads.prepared", path=str(heads_dir), encoder=encoder_path, seconds=round(seconds, 3))
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
    log.info("heads.progress", message=message)
    if progress is not None:
        progress(message)
