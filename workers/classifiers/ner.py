"""The `entities` task: from a text to entities with character offsets, over the shared encoder.

`EntityRecognizer.prepare` tokenizes a text once (with offsets, no truncation) and cuts it into
overlapping windows that fit the encoder; the classifier suite runs those windows in the same
forward pass as its other tasks' texts (`SentenceEncoder.encode_rows`) and hands back each window's
per-token hidden states; `EntityRecognizer.spans` turns them into tag probabilities with the
entity head, merges the windows, decodes BIO spans and lets the rules (`ner_rules.py`) win where
they overlap. Training (`textfleet.training.ner`) goes through the same `prepare`/`features` path.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.constants import NER_WINDOW_OVERLAP
from workers.classifiers.ner_head import EntityHead
from workers.classifiers.ner_rules import find_rule_entities
from workers.classifiers.ner_spans import Span, decode_bio, merge_windows, plan_windows, resolve

if TYPE_CHECKING:
    import torch

__all__ = ["NER_WINDOW_OVERLAP", "EntityRecognizer", "Prepared", "shape_features"]

_SENTENCE_END = frozenset(".!?\n")


@dataclass(frozen=True)
class Prepared:
    """A tokenized text: offsets and word index per token, windows, window input ids, shape features."""

    text: str
    offsets: list[tuple[int, int]]
    words: list[int]
    windows: list[tuple[int, int]]
    window_ids: list[list[int]]
    shape: np.ndarray


def shape_features(text: str, offsets: Sequence[tuple[int, int]], words: Sequence[int]) -> np.ndarray:
    """Per-token word-shape features (n_tokens, 8) from the raw text: what an uncased encoder loses.

    Columns: piece starts upper-case; piece is all upper-case; its word starts upper-case; piece has a
    digit; piece is punctuation; piece continues a word; first token or after a sentence end;
    word starts with @ or # (a social-media handle or tag)."""
    out = np.zeros((len(offsets), 8), dtype=np.float32)
    word_start: dict[int, int] = {}
    for i, ((start, end), word) in enumerate(zip(offsets, words, strict=True)):
        piece = text[start:end]
        first = word_start.setdefault(word, start)
        head = text[first] if first < len(text) else ""
        before = text[first - 1] if first > 0 else ""
        previous = text[offsets[i - 1][0] : offsets[i - 1][1]] if i > 0 else ""
        out[i] = (
            piece[:1].isupper(),
            len(piece) > 1 and piece.isupper(),
            head.isupper() or (head != "" and head in "@#" and text[first + 1 : first + 2].isupper()),
            any(c.isdigit() for c in piece),
            bool(piece) and all(unicodedata.category(c).startswith("P") for c in piece),
            i > 0 and words[i - 1] == word,
            i == 0 or previous[-1:] in _SENTENCE_END,
            any(c != "" and c in "@#" for c in (before, head)),
        )
    return out


class EntityRecognizer:
    """The entity head with the encoder's tokenizer: prepares texts and turns states into entities."""

    def __init__(self, head: EntityHead, tokenizer: Any, *, max_length: int) -> None:
        self.head = head
        self.tokenizer = tokenizer
        self.window = max_length - 2  # room for [CLS] and [SEP]
        self.overlap = min(NER_WINDOW_OVERLAP, self.window // 4)
        self.cls_id = int(tokenizer.cls_token_id)
        self.sep_id = int(tokenizer.sep_token_id)

    @property
    def layers(self) -> tuple[int, ...]:
        """Encoder hidden states the head reads per token."""
        return self.head.spec.layers

    def prepare(self, text: str) -> Prepared:
        """Tokenize `text` with offsets and plan its windows."""
        encoded = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False, truncation=False
        )
        ids: list[int] = list(encoded["input_ids"])
        offsets = [(int(a), int(b)) for a, b in encoded["offset_mapping"]]
        raw_words = encoded.word_ids()
        words = [w if w is not None else -1 - i for i, w in enumerate(raw_words)]
        windows = plan_windows(len(ids), self.window, self.overlap)
        window_ids = [[self.cls_id, *ids[a:b], self.sep_id] for a, b in windows]
        return Prepared(text, offsets, words, windows, window_ids, shape_features(text, offsets, words))

    def features(self, prepared: Prepared, states: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Head input per window, (window tokens + 2, dim): each layer's state normalised, the
        shape features of the window's tokens appended (zeros at [CLS] and [SEP])."""
        import torch

        out = []
        for (start, end), window in zip(prepared.windows, states, strict=True):
            normed = torch.nn.functional.normalize(window.float(), p=2.0, dim=-1).reshape(window.shape[0], -1)
            shape = torch.zeros((window.shape[0], prepared.shape.shape[1]), dtype=torch.float32)
            shape[1 : 1 + end - start] = torch.from_numpy(prepared.shape[start:end])
            out.append(torch.cat([normed, shape.to(normed.device)], dim=1))
        return out

    def probabilities(self, prepared: Prepared, features: Sequence[torch.Tensor]) -> np.ndarray:
        """Per-token tag probabilities (n_tokens, tags) from each window's head input, windows merged."""
        import torch

        width = max(f.shape[0] for f in features)
        device = features[0].device
        batch = torch.zeros((len(features), width, features[0].shape[1]), device=device)
        mask = torch.zeros((len(features), width), device=device)
        for i, f in enumerate(features):
            batch[i, : f.shape[0]] = f.float()
            mask[i, : f.shape[0]] = 1.0
        probs = self.head.probabilities(batch, mask).to("cpu").numpy()
        rows = [probs[i, 1 : 1 + end - start] for i, (start, end) in enumerate(prepared.windows)]
        return merge_windows(len(prepared.offsets), prepared.windows, rows)

    def decode(self, prepared: Prepared, features: Sequence[torch.Tensor]) -> list[Span]:
        """The model's entities (no rules) from each window's head input."""
        if not prepared.offsets:
            return []
        probs = self.probabilities(prepared, features)
        return decode_bio(prepared.text, prepared.offsets, prepared.words, probs, self.head.spec.tags)

    def model_spans(self, prepared: Prepared, states: Sequence[torch.Tensor]) -> list[Span]:
        """The model's entities (no rules)."""
        if not prepared.offsets:
            return []
        return self.decode(prepared, self.features(prepared, states))

    def result(self, prepared: Prepared, states: Sequence[torch.Tensor]) -> dict[str, Any]:
        """The `entities` result: model spans, with rule spans winning where they overlap."""
        spans = resolve(self.model_spans(prepared, states), find_rule_entities(prepared.text))
        return {"entities": [span.as_dict() for span in spans]}
