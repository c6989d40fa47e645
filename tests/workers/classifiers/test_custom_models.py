"""`textfleet train` on a user's file, `textfleet models list`, `textfleet eval`, and serving the
custom model through the suite (real encoder; a small generated file)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shared.constants import TaskName
from shared.errors import InvalidInputError
from shared.settings import Settings, get_settings
from textfleet.cli import app
from workers.classifiers.suite import EncoderClassifierSuite

pytestmark = pytest.mark.models

SPAM = [
    "Congratulations! You won a {p}. Claim it now at {u}",
    "URGENT: your {p} is waiting, reply YES to collect before midnight",
    "Limited offer: get a free {p} today only, click {u}",
    "You have been selected for a {p}! Call now to claim",
]
RUDE = [
    "you are a {i} and everyone knows it",
    "shut up, you absolute {i}",
    "nobody cares what a {i} like you thinks",
    "what a pathetic {i}, go away",
]
PLAIN = [
    "can we move the meeting about the {t} to friday?",
    "I left the {t} on the kitchen table for you",
    "thanks for sending the {t}, looks good to me",
    "did you remember to bring the {t} back?",
]
FILL = {
    "p": ["cash prize", "gift card", "cruise", "new phone", "voucher", "holiday"],
    "u": ["http://win.example", "http://claim.example", "bit.ly/prize"],
    "i": ["idiot", "clown", "loser", "moron", "fool", "joke"],
    "t": ["budget", "report", "keys", "slides", "invoice", "charger", "book"],
}


def _rows() -> list[dict[str, object]]:
    rng = random.Random(7)
    rows = []
    for templates, labels in ((SPAM, ["spam"]), (RUDE, ["rude"]), (PLAIN, [])):
        for template in templates:
            for _ in range(30):
                text = template.format(**{k: rng.choice(v) for k, v in FILL.items()})
                rows.append({"text": f"{text} #{rng.randint(1, 10**6)}", "labels": labels})
    return rows


@pytest.fixture(scope="module")
def trained(
    encoder_path: str, models_dir: Path, heads_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, Path]]:
    work = tmp_path_factory.mktemp("custom")
    data = work / "labels.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in _rows()) + "\n")
    patch = pytest.MonkeyPatch()
    patch.setenv("TEXTFLEET_ENCODER_MODEL", encoder_path)
    patch.setenv("TEXTFLEET_MODELS_DIR", str(models_dir))
    patch.setenv("TEXTFLEET_HEADS_DIR", str(heads_dir))
    patch.setenv("TEXTFLEET_CLASSIFY_DEVICE", "cpu")
    get_settings.cache_clear()
    result = CliRunner().invoke(
        app, ["train", str(data), "--name", "toy", "--epochs", "30", "--cache-dir", str(work / "cache")]
    )
    assert result.exit_code == 0, result.output
    yield data, work
    patch.undo()
    get_settings.cache_clear()


def test_train_writes_a_registered_model(trained: tuple[Path, Path], models_dir: Path) -> None:
    target = models_dir / "custom" / "toy"
    meta = json.loads((target / "head.json").read_text())
    assert meta["labels"] == ["rude", "spam"]
    assert meta["kind"] == "multilabel"
    assert set(meta["thresholds"]) == {"rude", "spam"}
    metrics = json.loads((target / "metrics.json").read_text())
    assert metrics["test"]["any"]["auprc"] > 0.9
    assert "Held-out figures" in (target / "MODEL_CARD.md").read_text()


def test_models_list_and_eval(trained: tuple[Path, Path]) -> None:
    data, work = trained
    listed = CliRunner().invoke(app, ["models", "list"])
    assert listed.exit_code == 0, listed.output
    assert "toy" in listed.output
    assert "moderate" in listed.output
    evaluated = CliRunner().invoke(
        app, ["eval", str(data), "--model", "toy", "--cache-dir", str(work / "cache")]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert '"auprc"' in evaluated.output


def test_train_refuses_a_bad_file(trained: tuple[Path, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("text\nhello\n")
    result = CliRunner().invoke(app, ["train", str(bad), "--name", "bad"])
    assert result.exit_code == 2
    assert "no 'label' or 'labels'" in " ".join(result.output.split())


def test_suite_serves_the_custom_model(trained: tuple[Path, Path], classifier_settings: Settings) -> None:
    suite = EncoderClassifierSuite.from_settings(classifier_settings)
    try:
        spam = suite.classify(
            TaskName.MODERATE, "You won a free cruise! Claim now at http://win.example", model="toy"
        )
        plain = suite.classify(TaskName.MODERATE, "the slides are on the kitchen table", model="toy")
        assert set(spam["category_scores"]) == {"rude", "spam"}
        assert spam["category_scores"]["spam"] > 0.5 > plain["category_scores"]["spam"]
        assert spam["flagged"] is True
        assert set(spam["thresholds"]) == {"rude", "spam"}
        default = suite.classify(TaskName.MODERATE, "the slides are on the kitchen table")
        assert "harassment" in default["category_scores"]
        with pytest.raises(InvalidInputError, match="not registered") as caught:
            suite.classify(TaskName.MODERATE, "hello", model="nope")
        assert caught.value.code == "unknown_model"
    finally:
        suite.close()
