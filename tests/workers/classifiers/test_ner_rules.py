"""Rule-based entities: exact shapes only, offsets into the input, data-file rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workers.classifiers.ner_rules import RULES_FILE, RuleSet, find_rule_entities


def _found(text: str) -> list[tuple[str, str]]:
    spans = find_rule_entities(text)
    for span in spans:
        assert text[span.start : span.end] == span.text and span.score == 1.0
    return [(s.type, s.text) for s in spans]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Write to jane.doe+news@example.co.uk.", [("EMAIL", "jane.doe+news@example.co.uk")]),
        ("See (https://example.com/a?b=1&c=2).", [("URL", "https://example.com/a?b=1&c=2")]),
        ("or www.example.org, today", [("URL", "www.example.org")]),
        ("Call +44 20 7946 0958 now", [("PHONE", "+44 20 7946 0958")]),
        ("Call (555) 123-4567 or 555.123.4567", [("PHONE", "(555) 123-4567"), ("PHONE", "555.123.4567")]),
        ("It cost $1,200.50 and €3 million.", [("MONEY", "$1,200.50"), ("MONEY", "€3 million")]),
        ("about 20 dollars or USD 15", [("MONEY", "20 dollars"), ("MONEY", "USD 15")]),
        ("due 2024-03-05 or March 5, 2024", [("DATE", "2024-03-05"), ("DATE", "March 5, 2024")]),
        ("on 5th of June 2023 and 12/31/2023", [("DATE", "5th of June 2023"), ("DATE", "12/31/2023")]),
    ],
)
def test_rules_find_exact_shapes(text: str, expected: list[tuple[str, str]]) -> None:
    assert _found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "version 1.2.3 scored 3-1 in 2024",
        "ip 10.0.0.1 port 8080",
        "room 12, floor 3, 45 people",
        "the meeting is next Tuesday",
        "user@localhost is not an address",
        "2024-13-45 is not a date",
    ],
)
def test_rules_leave_look_alikes_alone(text: str) -> None:
    assert _found(text) == []


def test_rules_handle_odd_whitespace_and_unicode() -> None:
    text = "Zahlung\u00a0€12,50?\u2028Mail: zoë@example.de\u3000📞 +49 30 1234567"
    found = _found(text)
    assert ("EMAIL", "zoë@example.de") not in found  # non-ASCII local parts are not matched
    assert ("PHONE", "+49 30 1234567") in found
    assert ("MONEY", "€12,50") in found


def test_a_rules_file_must_name_every_rule_type(tmp_path: Path) -> None:
    doc = json.loads(RULES_FILE.read_text())
    doc["rules"] = doc["rules"][:2]
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="rule types"):
        RuleSet.from_file(path)
