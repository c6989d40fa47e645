"""The labelled corpora the default heads are trained and measured on, mapped onto service labels.

Each loader reads one data set under a data directory (`../shared/data` by default: see its
README for sources and licenses) and yields `Example`s: a text, the labels it is known to have or
not have (multi-label tasks leave unknown labels out, e.g. a tweet labelled only for hate says
nothing about harassment), a source name and a split group. `split_of` puts every group in train,
val or test by a salted hash, so the split is fixed, deterministic and the same on every machine.

Only sets whose license allows a shipped model are used for the defaults (`LICENSES`); the
non-commercial Financial PhraseBank serves evaluation only. The synthetic examples are in
`data/synthetic.jsonl` beside this module (written for textfleet, same license as the code).
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from shared.settings import MODERATION_CATEGORIES

__all__ = [
    "LICENSES",
    "MODERATION_PARENTS",
    "SPLIT_SALT",
    "SYNTHETIC_FILE",
    "Example",
    "corpus",
    "split_of",
]

#: Where the synthetic examples live (task, label, text per line).
SYNTHETIC_FILE = Path(__file__).with_name("data") / "synthetic.jsonl"
#: Changing the salt changes every split: don't, unless all figures are measured again.
SPLIT_SALT = "textfleet-split-v1"
#: Percent of groups in train and val; the rest is the held-out test split.
TRAIN_PCT, VAL_PCT = 70, 15
#: Sentiment tweets used from SemEval 2013-2016 (a seeded sample keeps CPU embedding time sane).
SENTIMENT_SAMPLE = 16000

#: A positive of the first category is a positive of these too (as in OpenAI's category scores).
MODERATION_PARENTS: dict[str, tuple[str, ...]] = {
    "harassment/threatening": ("harassment", "violence"),
    "hate/threatening": ("hate", "violence"),
    "illicit/violent": ("illicit",),
    "self-harm/intent": ("self-harm",),
    "self-harm/instructions": ("self-harm",),
    "sexual/minors": ("sexual",),
    "violence/graphic": ("violence",),
}

#: Source name -> (license, whether a shipped default may be trained on it).
LICENSES: dict[str, tuple[str, bool]] = {
    "davidson": ("MIT", True),
    "tweeteval_hate": ("TweetEval terms (released without restrictions; SemEval/Twitter terms)", True),
    "tweeteval_offensive": ("TweetEval terms (released without restrictions; SemEval/Twitter terms)", True),
    "tweeteval_sentiment": ("TweetEval/SemEval 2013-2016 terms", True),
    "tweeteval_emotion": ("TweetEval terms", True),
    "hatexplain": ("MIT", True),
    "reddit_cssrs": ("CC BY (Zenodo 10.5281/zenodo.2667859)", True),
    "sms_spam": ("CC BY 4.0", True),
    "phishing_nazario": ("CC BY 4.0", True),
    "financial_phrasebank": ("CC BY-NC-SA 3.0 (non-commercial: evaluation only)", False),
    "synthetic": ("written for textfleet (project license)", True),
}


@dataclass(frozen=True)
class Example:
    """One labelled text. `labels` maps label -> 1.0/0.0 for the labels known for this text."""

    text: str
    source: str
    group: str
    labels: dict[str, float] = field(default_factory=dict)


def split_of(group: str) -> str:
    """`train`, `val` or `test` for a split group, from a salted SHA-256 (fixed forever)."""
    digest = hashlib.sha256(f"{SPLIT_SALT}:{group}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    if bucket < TRAIN_PCT:
        return "train"
    return "val" if bucket < TRAIN_PCT + VAL_PCT else "test"


def _all(value: float, labels: tuple[str, ...]) -> dict[str, float]:
    return dict.fromkeys(labels, value)


def _moderation_positive(category: str) -> dict[str, float]:
    """A synthetic positive: the category and its parents are 1, every other category 0."""
    labels = _all(0.0, MODERATION_CATEGORIES)
    for name in (category, *MODERATION_PARENTS.get(category, ())):
        labels[name] = 1.0
    return labels


def _csv(path: Path, delimiter: str = ",") -> Iterator[dict[str, str]]:
    csv.field_size_limit(1 << 30)
    with path.open(newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle, delimiter=delimiter)


def _jsonl(path: Path) -> Iterator[dict[str, object]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _ex(text: str, source: str, labels: dict[str, float], group: str | None = None) -> Example:
    text = " ".join(text.split())
    return Example(text, source, group or f"{source}:{text}", labels)


# --- Moderation ---------------------------------------------------------------------------------


def _moderation(data: Path) -> Iterator[Example]:
    cats = MODERATION_CATEGORIES
    for row in _csv(data / "davidson_labeled_data.csv"):
        cls = row["class"]
        labels = {"0": {"hate": 1.0}, "1": {"harassment": 1.0, "hate": 0.0}}.get(cls, _all(0.0, cats))
        yield _ex(row["tweet"], "davidson", labels)
    for name in ("train", "val"):
        for row in _csv(data / "tweeteval" / f"hate_{name}.csv"):
            yield _ex(row["text"], "tweeteval_hate", {"hate": float(row["label"])})
        for row in _csv(data / "tweeteval" / f"offensive_{name}.csv"):
            positive = row["label"] == "1"
            labels = {"harassment": 1.0} if positive else _all(0.0, cats)
            yield _ex(row["text"], "tweeteval_offensive", labels)
    for obj in _jsonl(data / "hatexplain" / "train.jsonl"):
        label = str(obj["label"])
        labels = {"hatespeech": {"hate": 1.0}, "offensive": {"harassment": 1.0, "hate": 0.0}}.get(
            label, _all(0.0, cats)
        )
        yield _ex(str(obj["text"]), "hatexplain", labels)
    yield from _suicide_posts(data)
    for row in _csv(data / "sms_spam_collection.tsv", delimiter="\t"):
        if row["Label"] == "ham":
            yield _ex(row["SMS"], "sms_spam", _all(0.0, cats))
    for task, label, text in _synthetic():
        if task == "moderate":
            yield _ex(text, "synthetic", _moderation_positive(label))
        elif task in ("benign", "sentiment", "risk") and not label.startswith("money"):
            yield _ex(text, "synthetic", _all(0.0, cats))


def _suicide_posts(data: Path) -> Iterator[Example]:
    """Reddit posts labelled with their author's C-SSRS level (split by user, Indicator left out)."""
    harm = ("self-harm", "self-harm/intent")
    for obj in _jsonl(data / "reddit_cssrs_suicide" / "train.jsonl"):
        level = str(obj["label"])
        if level == "Indicator":
            continue
        value = 0.0 if level == "Supportive" else 1.0
        labels = {**_all(value, harm), "self-harm/instructions": 0.0}
        posts = obj.get("posts")
        texts = [str(p) for p in posts] if isinstance(posts, list) else [str(obj["text"])]
        for text in texts:
            if len(text.split()) >= 4:
                yield _ex(text, "reddit_cssrs", labels, group=f"reddit_cssrs:{obj['user']}")


# --- Risk ---------------------------------------------------------------------------------------


def _risk(data: Path, labels: tuple[str, ...]) -> Iterator[Example]:
    for row in _csv(data / "phishing_nazario" / "train.csv"):
        text = f"{row['subject']}\n{row['body']}"
        yield _ex(text, "phishing_nazario", {"phishing": 1.0, "financial_distress": 0.0})
    for row in _csv(data / "sms_spam_collection.tsv", delimiter="\t"):
        if row["Label"] == "spam":
            yield _ex(row["SMS"], "sms_spam", {"fraud_scam": 1.0, "financial_distress": 0.0})
        else:
            yield _ex(row["SMS"], "sms_spam", _all(0.0, labels))
    for obj in _jsonl(data / "hatexplain" / "train.jsonl"):
        if obj["label"] == "normal":
            yield _ex(str(obj["text"]), "hatexplain", _all(0.0, labels))
    for row in _csv(data / "davidson_labeled_data.csv"):
        if row["class"] == "2":
            yield _ex(row["tweet"], "davidson", _all(0.0, labels))
    for task, label, text in _synthetic():
        if task == "risk":
            yield _ex(text, "synthetic", {**_all(0.0, labels), label: 1.0})
        elif task in ("benign", "sentiment") or (task == "moderate" and not label.startswith("illicit")):
            yield _ex(text, "synthetic", _all(0.0, labels))


# --- Sentiment ----------------------------------------------------------------------------------


def _sentiment(data: Path, sample: int) -> Iterator[Example]:
    rows = list(_csv(data / "tweeteval" / "sentiment_train_semeval2013-2016.csv"))
    random.Random(SPLIT_SALT).shuffle(rows)
    for row in [*rows[:sample], *_csv(data / "tweeteval" / "sentiment_val.csv")]:
        yield _ex(row["text"], "tweeteval_sentiment", _one_hot(row["label_name"]))
    emotion = {"joy": "positive", "optimism": "positive", "anger": "negative", "sadness": "negative"}
    for name in ("train", "val"):
        for row in _csv(data / "tweeteval" / f"emotion_{name}.csv"):
            yield _ex(row["text"], "tweeteval_emotion", _one_hot(emotion[row["label_name"]]))
    for task, label, text in _synthetic():
        if task == "sentiment":
            yield _ex(text, "synthetic", _one_hot(label))


def _one_hot(label: str) -> dict[str, float]:
    from workers.classifiers.heads import SENTIMENT_LABELS

    return {name: float(name == label) for name in SENTIMENT_LABELS}


def financial_phrasebank(data: Path) -> list[Example]:
    """Financial PhraseBank sentences (evaluation only: non-commercial license)."""
    return [
        _ex(row["text"], "financial_phrasebank", _one_hot(row["label"]))
        for row in _csv(data / "financial_phrasebank" / "train.csv")
    ]


def _synthetic() -> Iterator[tuple[str, str, str]]:
    for obj in _jsonl(SYNTHETIC_FILE):
        yield str(obj["task"]), str(obj["label"]), str(obj["text"])


def corpus(task: str, data: Path, *, sentiment_sample: int = SENTIMENT_SAMPLE) -> list[Example]:
    """Every example of `task` (moderate, risk or sentiment) from `data`, deduplicated by text.

    When one text occurs in several sets, the known labels are merged (a positive wins)."""
    from workers.classifiers.heads import RISK_LABELS

    data = Path(data).expanduser()
    if task == "moderate":
        stream = _moderation(data)
    elif task == "risk":
        stream = _risk(data, RISK_LABELS)
    elif task == "sentiment":
        stream = _sentiment(data, sentiment_sample)
    else:
        raise ValueError(f"no default corpus for task {task!r}")
    merged: dict[str, Example] = {}
    for example in stream:
        if not example.text:
            continue
        seen = merged.get(example.text)
        if seen is None:
            merged[example.text] = example
            continue
        labels = dict(seen.labels)
        for label, value in example.labels.items():
            labels[label] = max(value, labels.get(label, 0.0))
        if task == "sentiment" and sum(labels.values()) > 1:
            labels = seen.labels  # contradictory sentiment labels: keep the first
        merged[example.text] = Example(seen.text, seen.source, seen.group, labels)
    return list(merged.values())
