"""Corpora (label mappings, fixed split) and user files, on tiny data sets written here."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from shared.errors import InvalidInputError
from shared.settings import MODERATION_CATEGORIES
from textfleet.training.corpora import LICENSES, SYNTHETIC_FILE, corpus, split_of
from textfleet.training.defaults import shippable
from textfleet.training.userdata import read_labelled
from workers.classifiers.heads import RISK_LABELS


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A miniature ../shared/data with every file the loaders read."""
    d = tmp_path / "data"
    for sub in (
        "tweeteval",
        "hatexplain",
        "reddit_cssrs_suicide",
        "phishing_nazario",
        "financial_phrasebank",
    ):
        (d / sub).mkdir(parents=True)
    (d / "davidson_labeled_data.csv").write_text(
        ",count,hate_speech,offensive_language,neither,class,tweet\n"
        "0,3,3,0,0,0,those people are vermin\n1,3,0,3,0,1,shut up you clown\n2,3,0,0,3,2,nice weather today\n"
    )
    for name in ("hate_train", "hate_val"):
        (d / "tweeteval" / f"{name}.csv").write_text(f"text,label,label_name\n{name} tweet,1,hate\n")
    for name in ("offensive_train", "offensive_val"):
        (d / "tweeteval" / f"{name}.csv").write_text(
            f"text,label,label_name\n{name} rude,1,offensive\n{name} calm,0,not-offensive\n"
        )
    (d / "tweeteval" / "sentiment_train_semeval2013-2016.csv").write_text(
        "text,label,label_name,semeval_file\n"
        "love it,2,positive,x\nhate it,0,negative,x\nit is tuesday,1,neutral,x\n"
    )
    (d / "tweeteval" / "sentiment_val.csv").write_text("text,label,label_name\nso good,2,positive\n")
    for name in ("emotion_train", "emotion_val"):
        (d / "tweeteval" / f"{name}.csv").write_text(f"text,label,label_name\n{name} sad,3,sadness\n")
    rows = [
        {"id": "1", "text": "hateful post", "label": "hatespeech"},
        {"id": "2", "text": "normal post", "label": "normal"},
    ]
    (d / "hatexplain" / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    users = [
        {"user": "u1", "label": "Attempt", "posts": ["I tried to end it all last year"], "text": ""},
        {"user": "u2", "label": "Supportive", "posts": ["you are not alone, reach out to us"], "text": ""},
        {"user": "u3", "label": "Indicator", "posts": ["feeling low these days honestly"], "text": ""},
    ]
    (d / "reddit_cssrs_suicide" / "train.jsonl").write_text("\n".join(json.dumps(u) for u in users) + "\n")
    (d / "sms_spam_collection.tsv").write_text("Label\tSMS\nham\tsee you at 5\nspam\tWIN a prize now, call\n")
    (d / "phishing_nazario" / "train.csv").write_text(
        "sender,receiver,date,subject,body,urls,label\na,b,c,Verify account,Click here to log in,1,1\n"
    )
    (d / "financial_phrasebank" / "train.csv").write_text(
        "text,label,max_agreement\nProfit rose,positive,100\n"
    )
    return d


def _by_text(task: str, data: Path) -> dict[str, dict[str, float]]:
    return {e.text: e.labels for e in corpus(task, data)}


def test_moderation_mappings(data_dir: Path) -> None:
    rows = _by_text("moderate", data_dir)
    assert rows["those people are vermin"] == {"hate": 1.0}  # harassment unknown, not negative
    assert rows["shut up you clown"] == {"harassment": 1.0, "hate": 0.0}
    assert rows["nice weather today"] == dict.fromkeys(MODERATION_CATEGORIES, 0.0)
    assert rows["hate_train tweet"] == {"hate": 1.0}
    assert rows["offensive_val rude"] == {"harassment": 1.0}
    assert rows["hateful post"] == {"hate": 1.0}
    assert rows["I tried to end it all last year"]["self-harm/intent"] == 1.0
    assert rows["you are not alone, reach out to us"]["self-harm"] == 0.0
    assert "feeling low these days honestly" not in rows  # Indicator: left out
    assert "WIN a prize now, call" not in rows  # spam is a risk, not a moderation example
    threat = next(
        e
        for e in corpus("moderate", data_dir)
        if e.source == "synthetic" and e.labels.get("hate/threatening")
    )
    assert threat.labels["hate"] == 1.0 and threat.labels["violence"] == 1.0  # parents implied


def test_risk_and_sentiment_mappings(data_dir: Path) -> None:
    risk = _by_text("risk", data_dir)
    assert risk["Verify account Click here to log in"]["phishing"] == 1.0
    assert risk["WIN a prize now, call"]["fraud_scam"] == 1.0
    assert risk["see you at 5"] == dict.fromkeys(RISK_LABELS, 0.0)
    sentiment = _by_text("sentiment", data_dir)
    assert sentiment["love it"] == {"negative": 0.0, "neutral": 0.0, "positive": 1.0}
    assert sentiment["emotion_train sad"] == {"negative": 1.0, "neutral": 0.0, "positive": 0.0}
    labels = Counter(label for example in sentiment.values() for label, value in example.items() if value)
    assert {"negative", "neutral", "positive"} <= set(labels)


def test_reddit_posts_of_one_user_share_a_split(data_dir: Path) -> None:
    posts = [e for e in corpus("moderate", data_dir) if e.source == "reddit_cssrs"]
    assert posts
    assert all(e.group.startswith("reddit_cssrs:u") for e in posts)


def test_split_is_fixed_and_proportioned() -> None:
    assert split_of("davidson:hello") == split_of("davidson:hello")
    counts = Counter(split_of(f"group-{i}") for i in range(20000))
    assert 0.68 < counts["train"] / 20000 < 0.72
    assert 0.13 < counts["val"] / 20000 < 0.17
    assert 0.13 < counts["test"] / 20000 < 0.17


def test_non_commercial_sets_are_never_shipped(data_dir: Path) -> None:
    assert LICENSES["financial_phrasebank"][1] is False
    from textfleet.training.corpora import Example

    mixed = [Example("a", "financial_phrasebank", "a"), Example("b", "davidson", "b")]
    assert [e.source for e in shippable(mixed)] == ["davidson"]


def test_synthetic_file_covers_every_label() -> None:
    rows = [json.loads(line) for line in SYNTHETIC_FILE.read_text().splitlines() if line.strip()]
    by_task = {
        task: {r["label"] for r in rows if r["task"] == task} for task in ("moderate", "risk", "sentiment")
    }
    assert by_task["moderate"] == set(MODERATION_CATEGORIES)
    assert by_task["risk"] == set(RISK_LABELS)
    assert by_task["sentiment"] == {"negative", "neutral", "positive"}


def test_read_labelled_shapes(tmp_path: Path) -> None:
    multiclass = tmp_path / "mc.csv"
    multiclass.write_text("text,label\ngood,pos\nbad,neg\n")
    read = read_labelled(multiclass)
    assert (read.kind, read.labels) == ("multiclass", ("neg", "pos"))
    assert read.examples[0].labels == {"neg": 0.0, "pos": 1.0}

    listed = tmp_path / "ml.jsonl"
    listed.write_text('{"text": "a", "labels": ["x"]}\n{"text": "b", "labels": {"y": 1, "x": 0}}\n')
    read = read_labelled(listed)
    assert (read.kind, read.labels) == ("multilabel", ("x", "y"))
    assert read.examples[0].labels == {"x": 1.0, "y": 0.0}
    assert read.examples[1].labels == {"y": 1.0, "x": 0.0}

    columns = tmp_path / "cols.csv"
    columns.write_text("text,spam,rude\nhi,0,\nbuy now,1,0\n")
    read = read_labelled(columns, labels=("spam", "rude"))
    assert read.examples[0].labels == {"spam": 0.0}  # empty cell: unknown


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("x.txt", "whatever", "expected a .csv"),
        ("x.csv", "text,label\n,pos\n", "row 1 has no text"),
        ("x.csv", "text,label\nonly,pos\n", "at least two labels"),
        ("x.jsonl", "{not json}\n", "line 1 is not JSON"),
        ("x.csv", "text\nhello\n", "no 'label' or 'labels'"),
    ],
)
def test_read_labelled_names_the_problem(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InvalidInputError, match=message):
        read_labelled(path)
