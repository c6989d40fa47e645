"""workers.model_paths: one rule for "local directory or Hugging Face id" (vLLM engine and encoder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.model_paths import is_local_path


@pytest.mark.parametrize("name", ["/models/x", "~/models/x", "./x", "../x", "a/b/c"])
def test_path_like_names_are_local(name: str) -> None:
    assert is_local_path(name)


@pytest.mark.parametrize("name", ["gpt2", "HuggingFaceTB/SmolLM2-135M-Instruct"])
def test_hub_ids_are_not_local(name: str) -> None:
    assert not is_local_path(name)


def test_an_existing_relative_directory_is_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "org" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert is_local_path("org/name")
