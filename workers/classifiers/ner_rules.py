"""Rule-based entities (MONEY, DATE, EMAIL, PHONE, URL) of the `entities` task.

The patterns live in `data/entity_rules.json` beside this module (data, not Python literals), are
compiled once, and are only the exact kinds: an e-mail address, a URL, an amount with a currency, a
calendar date written with digits or a month name, a phone number with a country code or in the
North-American shapes. A rule span has score 1.0 and wins over any model span it overlaps
(`ner_spans.resolve`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from workers.classifiers.ner_spans import Span

__all__ = ["RULES_FILE", "RULE_TYPES", "RuleSet", "find_rule_entities", "rule_set"]

#: The rule patterns (one JSON document: trailing characters to trim and the ordered rules).
RULES_FILE = Path(__file__).with_name("data") / "entity_rules.json"
#: The types the rules produce (the contract; the rules file must name exactly these).
RULE_TYPES: tuple[str, ...] = ("EMAIL", "URL", "MONEY", "DATE", "PHONE")


@dataclass(frozen=True)
class RuleSet:
    """Compiled rules in priority order and the characters trimmed from a match's end."""

    rules: tuple[tuple[str, re.Pattern[str]], ...]
    trim_trailing: str

    @classmethod
    def from_file(cls, path: Path) -> RuleSet:
        """Read and compile a rules file; raises ValueError naming what is wrong with it."""
        doc = json.loads(path.read_text(encoding="utf-8"))
        rules = []
        for rule in doc["rules"]:
            flags = 0
            for name in rule.get("flags", []):
                flags |= int(getattr(re, name))
            rules.append((str(rule["type"]), re.compile(str(rule["pattern"]), flags)))
        types = {kind for kind, _ in rules}
        if types != set(RULE_TYPES):
            raise ValueError(f"{path} names the rule types {sorted(types)}, expected {sorted(RULE_TYPES)}")
        return cls(tuple(rules), str(doc.get("trim_trailing", "")))

    def find(self, text: str) -> list[Span]:
        """Every rule entity of `text`, non-overlapping, in text order."""
        found: list[Span] = []
        for kind, pattern in self.rules:
            for match in pattern.finditer(text):
                start, end = match.start(), match.end()
                while end > start and text[end - 1] in self.trim_trailing:
                    end -= 1
                if end <= start:
                    continue
                span = Span(text[start:end], kind, start, end, 1.0)
                if not any(span.overlaps(other) for other in found):
                    found.append(span)
        return sorted(found, key=lambda s: s.start)


@lru_cache(maxsize=1)
def rule_set() -> RuleSet:
    """The shipped rules (compiled once per process)."""
    return RuleSet.from_file(RULES_FILE)


def find_rule_entities(text: str) -> list[Span]:
    """The rule entities of `text` with the shipped rules."""
    return rule_set().find(text)
