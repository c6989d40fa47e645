"""`MODEL_CARD.md` of the entity head, written from its description and measured figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textfleet.training.ner_data import NER_SPLIT_SALT, TRAIN_PCT, VAL_PCT
from workers.classifiers.ner_head import EntityHead
from workers.classifiers.ner_rules import RULE_TYPES

__all__ = ["write_entity_card"]


def _table(figures: dict[str, Any], types: tuple[str, ...]) -> list[str]:
    rows = ["| type | precision | recall | F1 | support |", "| --- | --- | --- | --- | --- |"]
    for kind in (*types, "micro avg"):
        m = figures["types"].get(kind, {})
        rows.append(
            f"| {kind} | {m.get('precision', 0.0):.3f} | {m.get('recall', 0.0):.3f} | "
            f"{m.get('f1-score', 0.0):.3f} | {int(m.get('support', 0))} |"
        )
    return rows


def write_entity_card(directory: Path, head: EntityHead, metrics: dict[str, Any]) -> Path:
    """Write `directory/MODEL_CARD.md`; returns its path."""
    spec, splits = head.spec, metrics["splits"]
    lines = [
        "# Entity head (`entities` task)",
        "",
        f"A token-classification head over the frozen shared encoder ({head.meta.get('encoder')}): per "
        f"token, the hidden states of layers {list(spec.layers)} (each L2-normalised) plus "
        f"{spec.shape_features} word-shape features from the raw text (the encoder is uncased), "
        f"standardised, a width-3 convolution ({spec.hidden} channels), GELU, and a linear layer to "
        f"{len(spec.tags)} BIO tags over {', '.join(spec.types)}. Texts longer than the encoder's window "
        "are cut into overlapping windows; each token is decided in the window where it has the most "
        "context. Spans are widened to whole words; a span's score is the mean probability of its tags.",
        "",
        f"Rule types ({', '.join(RULE_TYPES)}) come from the patterns in "
        "`workers/classifiers/data/entity_rules.json` with score 1.0; **a rule span wins over every "
        "model span it overlaps** (the model span is dropped). The figures below are the model alone.",
        "",
        "## Data and license",
        "",
        f"- Trained on: {', '.join(metrics['corpora'])}. WNUT-17 (`../shared/data/wnut17`; CC BY 4.0, "
        "Derczynski et al. 2017): person → PERSON, location → LOCATION, corporation and group → ORG, "
        "creative-work and product → MISC. CoNLL-2003 (`../shared/data/conll2003`; news): PER, ORG, LOC, "
        "MISC map one to one.",
        "- **License.** CoNLL-2003 has no open license (Reuters RCV1 text, research use). A head for "
        "commercial use without that question: `python -m textfleet.training.ner --corpora wnut17` "
        "(measured with that choice: micro F1 0.51 on the WNUT-17 held-out split, 0.43 on CoNLL-2003's).",
        "- The official WNUT-17 and CoNLL-2003 test splits are not used at all.",
        f"- Split: salted hash (`{NER_SPLIT_SALT}`) of each WNUT-17 sentence / each CoNLL-2003 document of "
        f"the training files: {TRAIN_PCT}% train, {VAL_PCT}% val (early stopping), the rest held-out test. "
        f"Sentences used: train {splits['train']}, val {splits['val']}, held-out WNUT-17 "
        f"{splits['wnut17']}, CoNLL-2003 {splits['conll2003']} (limits per corpus, 0 = all: "
        f"{metrics['limits']}).",
        "",
        "## Held-out figures (entity level, seqeval, strict span and type match, no rules)",
        "",
        f"WNUT-17 held-out split (social media; {metrics['test']['sentences']} sentences):",
        "",
        *_table(metrics["test"], spec.types),
        "",
        f"CoNLL-2003 held-out split (news; {metrics['conll2003_test']['sentences']} sentences):",
        "",
        *_table(metrics["conll2003_test"], spec.types),
        "",
        f"Best epoch {metrics['best_epoch']} (val micro F1 {metrics['val_f1']:.3f}); embedding "
        f"{metrics['embed_seconds']}s, total {metrics['train_seconds']}s on CPU. "
        "Reproduce: `python -m textfleet.training.ner --data ../shared/data` (or `make models-train`).",
        "",
        "## Limits",
        "",
        "- Frozen, uncased, small encoder and a small head: recall is lowest for MISC and ORG; other "
        "domains than news and social media are unmeasured.",
        "- English only. No nested entities. Scores are not calibrated probabilities.",
        "- Rules find only exact shapes: e-mail addresses, URLs, amounts with a currency sign or code, "
        "numeric or month-name dates with a year, phone numbers with a country code or in North-American "
        'shapes. Relative dates ("next Tuesday") and bare numbers are not entities.',
        "",
    ]
    path = directory / "MODEL_CARD.md"
    path.write_text("\n".join(lines))
    return path
