"""Windows over long texts, window merging, BIO decoding to character spans, rules winning."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from workers.classifiers.ner_spans import (
    Span,
    bio_tags,
    decode_bio,
    merge_windows,
    plan_windows,
    resolve,
    tags_of_spans,
)

TAGS = bio_tags(("PERSON", "ORG"))  # O, B-PERSON, I-PERSON, B-ORG, I-ORG


def _probs(tags: list[str]) -> np.ndarray:
    out = np.full((len(tags), len(TAGS)), 0.01, dtype=np.float32)
    for i, tag in enumerate(tags):
        out[i, TAGS.index(tag)] = 0.9
    return out


def _tokens(text: str) -> tuple[list[tuple[int, int]], list[int]]:
    """Whitespace tokens of `text` (each its own word)."""
    offsets, start = [], None
    for i, ch in enumerate(text + " "):
        if ch.isspace() and start is not None:
            offsets.append((start, i))
            start = None
        elif not ch.isspace() and start is None:
            start = i
    return offsets, list(range(len(offsets)))


@pytest.mark.parametrize(
    ("n", "size", "overlap"),
    [(0, 10, 2), (5, 10, 2), (10, 10, 2), (11, 10, 2), (100, 10, 3), (1000, 254, 64)],
)
def test_windows_cover_every_token_within_size_with_overlap(n: int, size: int, overlap: int) -> None:
    windows = plan_windows(n, size, overlap)
    assert windows[0][0] == 0 and windows[-1][1] == n
    assert all(0 < end - start <= size or n == 0 for start, end in windows)
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert end - start >= overlap  # neighbours share at least `overlap` tokens
    assert set().union(*(range(a, b) for a, b in windows)) == set(range(n))


def test_plan_windows_rejects_a_bad_plan() -> None:
    with pytest.raises(ValueError, match="bad window plan"):
        plan_windows(10, 4, 4)


def test_merge_takes_each_token_from_the_window_where_it_is_most_central() -> None:
    windows = plan_windows(12, 8, 4)  # (0, 8), (4, 12)
    assert windows == [(0, 8), (4, 12)]
    first = np.zeros((8, 2), dtype=np.float32)
    first[:, 0] = 1.0
    second = np.zeros((8, 2), dtype=np.float32)
    second[:, 1] = 1.0
    merged = merge_windows(12, windows, [first, second])
    # tokens 4..7 are in both: 4 and 5 are more central in the first window, 6 and 7 in the second
    assert merged[:, 0].tolist() == [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]


def test_merge_checks_shapes() -> None:
    with pytest.raises(ValueError, match="shape"):
        merge_windows(4, [(0, 4)], [np.zeros((3, 2), dtype=np.float32)])


def test_decode_bio_gives_character_spans_of_the_input() -> None:
    text = "Yesterday  Barack\tObama met\u00a0Acme Corp staff"
    offsets, words = _tokens(text)
    tags = ["O", "B-PERSON", "I-PERSON", "O", "B-ORG", "I-ORG", "O"]
    spans = decode_bio(text, offsets, words, _probs(tags), TAGS)
    assert [(s.text, s.type) for s in spans] == [("Barack\tObama", "PERSON"), ("Acme Corp", "ORG")]
    for span in spans:
        assert text[span.start : span.end] == span.text
        assert span.score == pytest.approx(0.9, abs=1e-3)


def test_decode_bio_starts_a_span_at_a_stray_i_tag_and_splits_on_a_type_change() -> None:
    text = "a b c d"
    offsets, words = _tokens(text)
    spans = decode_bio(text, offsets, words, _probs(["I-ORG", "I-PERSON", "B-PERSON", "O"]), TAGS)
    assert [(s.text, s.type) for s in spans] == [("a", "ORG"), ("b", "PERSON"), ("c", "PERSON")]


def test_decode_bio_widens_spans_to_whole_words() -> None:
    text = "Welcome to Zürichberg today"
    # "Zürichberg" as three pieces of one word; the model tags only the middle piece.
    offsets = [(0, 7), (8, 10), (11, 15), (15, 19), (19, 21), (22, 27)]
    words = [0, 1, 2, 2, 2, 3]
    spans = decode_bio(text, offsets, words, _probs(["O", "O", "O", "B-ORG", "O", "O"]), TAGS)
    assert [(s.text, s.start, s.end) for s in spans] == [("Zürichberg", 11, 21)]


def test_decode_bio_with_astral_characters_keeps_offsets_in_code_points() -> None:
    text = "😀😀 Ana 🎉 lives"
    offsets, words = _tokens(text)
    spans = decode_bio(text, offsets, words, _probs(["O", "B-PERSON", "O", "O"]), TAGS)
    assert spans == [Span("Ana", "PERSON", 3, 6, spans[0].score)]


def test_rule_spans_win_over_overlapping_model_spans() -> None:
    model = [Span("Acme", "ORG", 0, 4, 0.8), Span("jo@acme.io", "PERSON", 10, 20, 0.6)]
    rules = [Span("jo@acme.io", "EMAIL", 10, 20, 1.0)]
    assert resolve(model, rules) == [model[0], rules[0]]


def test_tags_of_spans_marks_words_inside_spans() -> None:
    words = [(0, 4), (5, 10), (11, 13), (14, 19)]
    spans = [Span("John Smith", "PERSON", 0, 10, 1.0), Span("Paris", "LOCATION", 14, 19, 1.0)]
    assert tags_of_spans(words, spans) == ["B-PERSON", "I-PERSON", "O", "B-LOCATION"]
