"""Train and measure the entity head (`entities` task) from `../shared/data`: one command.

`python -m textfleet.training.ner --data ../shared/data` (also `make models-train`) embeds every
sentence once through the shared encoder (the same `EntityRecognizer.prepare`/`features` path the
worker uses), trains the head on the train splits of its corpora (WNUT-17 and CoNLL-2003 by default;
`--corpora wnut17` for a head on openly licensed data only) with early stopping on their val splits'
entity F1, measures entity-level precision/recall/F1 per type with seqeval on each corpus's held-out
test split (fixed by a salted hash of the training files; the official test splits are never read),
and writes `workers/classifiers/defaults/entities/` (weights, ner.json, metrics.json, MODEL_CARD.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from textfleet.training.ner_card import write_entity_card
from textfleet.training.ner_data import LICENSES, Sentence, load_corpus, split_of
from workers.classifiers.ner import EntityRecognizer, Prepared
from workers.classifiers.ner_head import (
    ENTITY_HEAD_DIR,
    EntityHead,
    EntityHeadSpec,
    build_entity_head,
)
from workers.classifiers.ner_spans import OUTSIDE, tags_of_spans

if TYPE_CHECKING:
    import torch

    from workers.classifiers.encoder import SentenceEncoder

__all__ = ["Encoded", "NerConfig", "app", "encode", "evaluate", "train_entity_head"]

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "workers" / "classifiers" / "defaults" / ENTITY_HEAD_DIR
EMBED_BATCH = 32
#: Sentences per corpus (train, val) and of CoNLL's held-out split to use; 0 means all, which is how
#: the shipped head is trained (about 10 minutes on 2 CPU cores). Smaller values give quick trial runs.
TRAIN_LIMIT, VAL_LIMIT, CONLL_LIMIT = 0, 0, 0
#: The corpora the shipped head is trained on (see the model card for their licenses).
DEFAULT_CORPORA = "wnut17,conll2003"


@dataclass(frozen=True)
class NerConfig:
    """Training settings (stored in ner.json)."""

    epochs: int = 15
    patience: int = 3
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    seed: int = 20261202


@dataclass
class Encoded:
    """A sentence ready for the head: its prepared text, per-window features and per-token targets."""

    sentence: Sentence
    prepared: Prepared
    features: list[np.ndarray]  # per window, (tokens + 2, dim) float16
    targets: list[np.ndarray]  # per window, (tokens + 2,) tag index, -100 at [CLS]/[SEP]


def _token_tags(sentence: Sentence, prepared: Prepared) -> list[str]:
    """Each token's gold tag: its word's tag on the first piece, I- on the word's later pieces."""
    out, word_of = [], 0
    for i, (start, _) in enumerate(prepared.offsets):
        while word_of + 1 < len(sentence.words) and sentence.words[word_of][1] <= start:
            word_of += 1
        tag = sentence.tags[word_of]
        continuation = i > 0 and prepared.words[i] == prepared.words[i - 1]
        out.append(f"I-{tag[2:]}" if continuation and tag != OUTSIDE else tag)
    return out


def encode(
    sentences: Sequence[Sentence], recognizer: EntityRecognizer, encoder: SentenceEncoder, *, label: str
) -> list[Encoded]:
    """Run every sentence's windows through the encoder (in batches) and build head inputs."""
    from rich.progress import Progress

    index = {tag: i for i, tag in enumerate(recognizer.head.spec.tags)}
    out: list[Encoded] = []
    with Progress(transient=True) as progress:
        bar = progress.add_task(f"embedding {label}", total=len(sentences))
        for first in range(0, len(sentences), EMBED_BATCH):
            chunk = sentences[first : first + EMBED_BATCH]
            prepared = [recognizer.prepare(s.text) for s in chunk]
            windows = [ids for p in prepared for ids in p.window_ids]
            _, states = encoder.encode_rows([], windows, (), recognizer.layers)
            at = 0
            for sentence, prep in zip(chunk, prepared, strict=True):
                mine = states[at : at + len(prep.windows)]
                at += len(prep.windows)
                tags = np.array([index[t] for t in _token_tags(sentence, prep)], dtype=np.int64)
                feats = [f.numpy().astype(np.float16) for f in recognizer.features(prep, mine)]
                targets = []
                for start, end in prep.windows:
                    target = np.full(end - start + 2, -100, dtype=np.int64)
                    target[1:-1] = tags[start:end]
                    targets.append(target)
                out.append(Encoded(sentence, prep, feats, targets))
            progress.advance(bar, len(chunk))
    return out


def _batches(
    rows: list[tuple[np.ndarray, np.ndarray]], size: int, rng: np.random.Generator
) -> list[list[int]]:
    order = sorted(range(len(rows)), key=lambda i: rows[i][0].shape[0])
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    rng.shuffle(batches)
    return batches


def _tensor_batch(
    rows: list[tuple[np.ndarray, np.ndarray]], picked: list[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    import torch

    width = max(rows[i][0].shape[0] for i in picked)
    dim = rows[picked[0]][0].shape[1]
    x = torch.zeros((len(picked), width, dim))
    mask = torch.zeros((len(picked), width))
    y = torch.full((len(picked), width), -100, dtype=torch.long)
    for j, i in enumerate(picked):
        n = rows[i][0].shape[0]
        x[j, :n] = torch.from_numpy(rows[i][0].astype(np.float32))
        mask[j, :n] = 1.0
        y[j, :n] = torch.from_numpy(rows[i][1])
    return x, mask, y


def evaluate(recognizer: EntityRecognizer, data: Sequence[Encoded]) -> dict[str, Any]:
    """Entity-level precision/recall/F1 (seqeval, strict BIO spans over the gold words) per type and
    micro-averaged, of the model spans decoded exactly as the worker decodes them (no rules)."""
    import torch
    from seqeval.metrics import classification_report

    gold, predicted = [], []
    recognizer.head.module.eval()
    for item in data:
        features = [torch.from_numpy(f.astype(np.float32)) for f in item.features]
        spans = recognizer.decode(item.prepared, features)
        gold.append(list(item.sentence.tags))
        predicted.append(tags_of_spans(item.sentence.words, spans))
    report: dict[str, Any] = classification_report(gold, predicted, output_dict=True, zero_division=0)
    per_type = {
        kind: {k: round(float(v), 4) for k, v in values.items()}
        for kind, values in report.items()
        if kind in recognizer.head.spec.types or kind == "micro avg"
    }
    return {"sentences": len(data), "types": per_type, "micro": per_type.get("micro avg", {})}


def train_entity_head(
    train: list[Encoded], val: list[Encoded], recognizer: EntityRecognizer, config: NerConfig
) -> dict[str, Any]:
    """Fit `recognizer.head` in place (best val micro F1 kept); returns the training record."""
    import torch

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    rows = [(f, t) for item in train for f, t in zip(item.features, item.targets, strict=True)]
    stacked = np.concatenate([f[1:-1].astype(np.float32) for f, _ in rows])
    module = recognizer.head.module
    module.center.copy_(torch.from_numpy(stacked.mean(axis=0)))  # type: ignore[operator]
    module.scale.copy_(torch.from_numpy(np.clip(stacked.std(axis=0), 1e-3, None)))  # type: ignore[operator]
    optimizer = torch.optim.AdamW(
        module.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100)
    best, best_state, best_epoch, history = -1.0, None, 0, []
    for epoch in range(1, config.epochs + 1):
        module.train()
        total = 0.0
        for picked in _batches(rows, config.batch_size, rng):
            x, mask, y = _tensor_batch(rows, picked)
            loss = loss_fn(module(x, mask).reshape(-1, len(recognizer.head.spec.tags)), y.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(picked)
        f1 = float(evaluate(recognizer, val)["micro"].get("f1-score", 0.0))
        history.append({"epoch": epoch, "loss": round(total / len(rows), 5), "val_f1": round(f1, 4)})
        typer.echo(f"epoch {epoch}: loss {total / len(rows):.4f}, val entity F1 {f1:.4f}")
        if f1 > best:
            best, best_epoch = f1, epoch
            best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        elif epoch - best_epoch >= config.patience:
            break
    assert best_state is not None
    module.load_state_dict(best_state)
    module.eval()
    return {"best_epoch": best_epoch, "val_f1": round(best, 4), "history": history}


app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    data: Annotated[Path, typer.Option(help="The labelled data folder (see its README).")] = Path(
        "../shared/data"
    ),
    out: Annotated[Path, typer.Option(help="Where to write the head, metrics and model card.")] = DEFAULT_OUT,
    encoder_path: Annotated[
        str, typer.Option("--encoder", help="Encoder directory (default: the prepared one).")
    ] = "",
    corpora: Annotated[
        str, typer.Option(help="Comma-separated corpora to train on: wnut17, conll2003.")
    ] = DEFAULT_CORPORA,
    train_limit: Annotated[
        int, typer.Option(help="Use at most this many training sentences per corpus (0: all).")
    ] = TRAIN_LIMIT,
    val_limit: Annotated[
        int, typer.Option(help="Stop early on at most this many val sentences per corpus (0: all).")
    ] = VAL_LIMIT,
    conll_limit: Annotated[
        int, typer.Option(help="Measure on at most this many CoNLL-2003 held-out sentences (0: all).")
    ] = CONLL_LIMIT,
) -> None:
    """Train the entity head and measure it on the held-out splits of WNUT-17 and CoNLL-2003."""
    from shared.settings import Settings
    from workers.classifiers.encoder import SentenceEncoder

    started = time.perf_counter()
    config = NerConfig()
    encoder = SentenceEncoder.load(encoder_path or Settings().encoder_model_path, device="cpu")
    spec = EntityHeadSpec()
    head = EntityHead(spec, spec.dim(encoder.dim), build_entity_head(spec.dim(encoder.dim), spec))
    recognizer = EntityRecognizer(head, encoder.tokenizer, max_length=encoder.max_length)
    sources = [name.strip() for name in corpora.split(",") if name.strip()]
    splits: dict[str, list[Sentence]] = {"train": [], "val": []}
    tests: dict[str, list[Sentence]] = {}
    for source in ("wnut17", "conll2003"):
        rows = load_corpus(source, data)
        by_split = {name: [s for s in rows if split_of(s.group) == name] for name in ("train", "val", "test")}
        if source in sources:
            splits["train"] += by_split["train"][:train_limit] if train_limit else by_split["train"]
            splits["val"] += by_split["val"][:val_limit] if val_limit else by_split["val"]
        cap = conll_limit if source == "conll2003" else 0
        tests[source] = by_split["test"][:cap] if cap else by_split["test"]
    encoded = {
        name: encode(rows, recognizer, encoder, label=name) for name, rows in {**splits, **tests}.items()
    }
    embed_seconds = time.perf_counter() - started
    record = train_entity_head(encoded["train"], encoded["val"], recognizer, config)
    metrics: dict[str, Any] = {
        "task": "entities",
        "corpora": sources,
        "splits": {name: len(rows) for name, rows in {**splits, **tests}.items()},
        "limits": {"train": train_limit, "val": val_limit, "conll2003_test": conll_limit},
        "val": evaluate(recognizer, encoded["val"]),
        "test": evaluate(recognizer, encoded["wnut17"]),
        "conll2003_test": evaluate(recognizer, encoded["conll2003"]),
        "embed_seconds": round(embed_seconds, 1),
        "train_seconds": round(time.perf_counter() - started, 1),
        **record,
    }
    head.meta = {
        "encoder": Path(encoder.source).name,
        "trained_on": sources,
        "licenses": {source: LICENSES[source][0] for source in sources},
        "config": config.__dict__,
        "train_sentences": len(splits["train"]),
    }
    head.save(out)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    write_entity_card(out, head, metrics)
    typer.echo(f"wrote {out} in {metrics['train_seconds']}s; test micro F1 {metrics['test']['micro']}")


if __name__ == "__main__":
    app()
