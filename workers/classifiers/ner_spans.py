"""Entity spans over character offsets: windows over long texts, BIO decoding, merging with rules.

Pure Python (numpy only), shared by the `entities` task (`ner.py`) and its training
(`textfleet.training.ner`). A text is tokenized once with character offsets; texts longer than the
encoder's window are cut into overlapping windows of tokens, each token's tag scores are taken from
the window where it sits furthest from an edge (the most context on both sides), BIO tags are
decoded into spans of whole words, and rule spans (`ner_rules.py`) replace the model spans they
overlap. Every span's `text` is `input[start:end]`: offsets are Python string (code point) indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "OUTSIDE",
    "Span",
    "bio_tags",
    "decode_bio",
    "merge_windows",
    "plan_windows",
    "resolve",
    "tags_of_spans",
]

#: The BIO tag of tokens outside every entity.
OUTSIDE = "O"


@dataclass(frozen=True)
class Span:
    """One entity: `text == input[start:end]`, its type and a score in [0, 1]."""

    text: str
    type: str
    start: int
    end: int
    score: float

    def as_dict(self) -> dict[str, object]:
        """The JSON shape of an entity in a result."""
        return {
            "text": self.text,
            "type": self.type,
            "start": self.start,
            "end": self.end,
            "score": self.score,
        }

    def overlaps(self, other: Span) -> bool:
        """Whether the two spans share at least one character."""
        return self.start < other.end and other.start < self.end


def bio_tags(types: Sequence[str]) -> tuple[str, ...]:
    """The tag set of a head over entity `types`: O, then B-/I- of each type."""
    return (OUTSIDE, *(f"{prefix}-{t}" for t in types for prefix in ("B", "I")))


def plan_windows(n_tokens: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """Token ranges `[start, end)` of windows of at most `size` tokens covering `n_tokens`, each
    sharing `overlap` tokens with the next. One window when the text fits (also when it is empty)."""
    if size <= 0 or not 0 <= overlap < size:
        raise ValueError(f"bad window plan: size {size}, overlap {overlap}")
    if n_tokens <= size:
        return [(0, n_tokens)]
    starts = [*range(0, n_tokens - size, size - overlap), n_tokens - size]
    return [(start, start + size) for start in starts]


def merge_windows(
    n_tokens: int, windows: Sequence[tuple[int, int]], scores: Sequence[np.ndarray]
) -> np.ndarray:
    """Per-token scores `(n_tokens, tags)` from per-window scores `(end - start, tags)`: each token
    takes the row of the window in which it is furthest from either edge (ties: the earlier window)."""
    if len(windows) != len(scores):
        raise ValueError(f"{len(windows)} windows but {len(scores)} score arrays")
    if not windows:
        raise ValueError("no windows")
    width = scores[0].shape[1]
    out = np.zeros((n_tokens, width), dtype=np.float32)
    margin = np.full(n_tokens, -1, dtype=np.int64)
    for (start, end), rows in zip(windows, scores, strict=True):
        if rows.shape != (end - start, width):
            raise ValueError(f"window {start}:{end} has scores of shape {rows.shape}")
        positions = np.arange(start, end)
        mine = np.minimum(positions - start, end - 1 - positions)
        better = mine > margin[start:end]
        out[positions[better]] = rows[better]
        margin[start:end] = np.where(better, mine, margin[start:end])
    return out


def decode_bio(
    text: str,
    offsets: Sequence[tuple[int, int]],
    words: Sequence[int],
    probs: np.ndarray,
    tags: Sequence[str],
) -> list[Span]:
    """Spans from per-token tag probabilities `(n_tokens, tags)`.

    A span starts at a B- tag, or at an I- tag that does not continue a span of its type, and grows
    over I- tags of its type. Spans are widened to whole words (`words[i]` is token i's word) so a
    word is never cut; the score is the mean probability of the chosen tags."""
    best = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    spans: list[Span] = []
    current: tuple[str, int, int, list[float]] | None = None  # type, first token, last token, probs

    def close() -> None:
        if current is None:
            return
        kind, first, last, chosen = current
        while first > 0 and words[first - 1] == words[first]:
            first -= 1
        while last + 1 < len(words) and words[last + 1] == words[last]:
            last += 1
        start, end = offsets[first][0], offsets[last][1]
        if end > start:
            spans.append(Span(text[start:end], kind, start, end, round(float(np.mean(chosen)), 4)))

    for i, index in enumerate(best.tolist()):
        tag = tags[index]
        prob = float(probs[i, index])
        prefix, _, kind = tag.partition("-")
        continues = current is not None and prefix == "I" and kind == current[0]
        # A word's later pieces follow its first piece's decision.
        same_word = i > 0 and words[i] == words[i - 1]
        if same_word and current is not None and tag == OUTSIDE:
            continue
        if continues or (same_word and current is not None and prefix == "B" and kind == current[0]):
            assert current is not None
            current = (current[0], current[1], i, [*current[3], prob])
            continue
        close()
        current = (kind, i, i, [prob]) if tag != OUTSIDE else None
    close()
    return _non_overlapping(spans)


def _non_overlapping(spans: list[Span]) -> list[Span]:
    """Spans widened to whole words can touch the same word twice: keep the first of such pairs."""
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if not kept or not kept[-1].overlaps(span):
            kept.append(span)
    return kept


def resolve(model_spans: Sequence[Span], rule_spans: Sequence[Span]) -> list[Span]:
    """All rule spans plus the model spans that overlap none of them, in text order."""
    kept = [s for s in model_spans if not any(s.overlaps(r) for r in rule_spans)]
    return sorted([*rule_spans, *kept], key=lambda s: (s.start, s.end))


def tags_of_spans(token_offsets: Sequence[tuple[int, int]], spans: Sequence[Span]) -> list[str]:
    """BIO tags of tokens (by character offsets) from spans: a token inside a span is tagged with its
    type, B- for the first such token. Used to score predicted spans against gold word tags."""
    out: list[str] = []
    previous: Span | None = None
    for start, end in token_offsets:
        inside = next((s for s in spans if s.start < end and start < s.end), None)
        if inside is None:
            out.append(OUTSIDE)
        else:
            out.append(f"{'I' if inside is previous else 'B'}-{inside.type}")
        previous = inside
    return out
