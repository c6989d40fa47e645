"""The `entities` task on the real encoder and the shipped entity head, through the classifier suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.constants import TaskName
from shared.schemas import EntitiesResult, SentimentResult
from shared.settings import Settings
from workers.classifiers.suite import EncoderClassifierSuite

pytestmark = pytest.mark.models

ENTITIES = TaskName("entities")
NEWS = "Angela Merkel met Emmanuel Macron in Paris, and Microsoft said it would open an office in Berlin."


@pytest.fixture(scope="module")
def suite(classifier_settings: Settings) -> Iterator[EncoderClassifierSuite]:
    suite = EncoderClassifierSuite.from_settings(classifier_settings)
    yield suite
    suite.close()


def _entities(suite: EncoderClassifierSuite, text: str) -> EntitiesResult:
    result = EntitiesResult.model_validate(suite.classify(ENTITIES, text, timeout_s=120))
    previous_end = 0
    for entity in result.entities:
        assert text[entity.start : entity.end] == entity.text
        assert entity.start >= previous_end and entity.end > entity.start  # in order, no overlaps
        assert entity.text == entity.text.strip()
        previous_end = entity.end
    return result


def test_finds_people_and_places_with_offsets(suite: EncoderClassifierSuite) -> None:
    found = {(e.type, e.text) for e in _entities(suite, NEWS).entities}
    assert ("PERSON", "Angela Merkel") in found
    assert ("LOCATION", "Paris") in found or ("LOCATION", "Berlin") in found


def test_rules_win_over_the_model(suite: EncoderClassifierSuite) -> None:
    text = "Email Jane at jane.smith@acme.com or visit https://acme.com/team before 2024-06-30."
    found = {(e.type, e.text) for e in _entities(suite, text).entities}
    assert {
        ("EMAIL", "jane.smith@acme.com"),
        ("URL", "https://acme.com/team"),
        ("DATE", "2024-06-30"),
    } <= found
    assert not any(e[1] in ("acme.com", "jane.smith") for e in found)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \t\n",
        "😀😀 Barack\u00a0Obama\u2028visited\u3000Tōkyō and Zürich 🎉 with Ms. Nguyễn",
        "e\u0301cole de Ge\u0301ne\u0300ve — Jean-Luc Picard\r\nat  Starfleet\u200b HQ",
        "日本の東京で Shinzo Abe が話した。",
    ],
)
def test_offsets_hold_on_unicode_and_odd_whitespace(suite: EncoderClassifierSuite, text: str) -> None:
    _entities(suite, text)


def test_long_texts_are_windowed(suite: EncoderClassifierSuite) -> None:
    filler = "The weather was mild and the meeting went on for a long time without any decision. " * 60
    text = f"{filler}Then Angela Merkel flew to Paris. {filler}Contact press@example.com."
    windows = suite.entities.prepare(text).windows if suite.entities else []
    assert len(windows) >= 3
    found = {(e.type, e.text) for e in _entities(suite, text).entities}
    assert ("PERSON", "Angela Merkel") in found  # in the middle: decided inside an overlapping window
    assert ("EMAIL", "press@example.com") in found  # past the first windows
    middle = text.index("Angela")
    assert any(e.start == middle for e in _entities(suite, text).entities)


def test_entities_share_a_forward_pass_with_sentence_tasks(suite: EncoderClassifierSuite) -> None:
    assert suite.entities is not None
    before = suite.encoder.forward_passes
    outcomes = suite._classify_items(
        [
            (TaskName("sentiment"), "I love it, fantastic!", suite.heads.heads["sentiment"]),
            (ENTITIES, NEWS, suite.entities.head),
            (TaskName("risk"), "Send your PIN to claim the prize", suite.heads.heads["risk"]),
            (ENTITIES, "Tim Cook runs Apple.", suite.entities.head),
        ]
    )
    assert suite.encoder.forward_passes == before + 1
    assert SentimentResult.model_validate(outcomes[0]).label == "positive"
    mixed = EntitiesResult.model_validate(outcomes[1]).entities
    alone = EntitiesResult.model_validate(suite.classify(ENTITIES, NEWS)).entities
    assert [(e.type, e.start, e.end) for e in mixed] == [(e.type, e.start, e.end) for e in alone]
    assert [e.score for e in mixed] == pytest.approx([e.score for e in alone], abs=1e-3)
