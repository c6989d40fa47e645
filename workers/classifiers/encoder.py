"""A sentence encoder: a transformers encoder with mean pooling and L2 normalisation.

This is what sentence-transformers does for all-MiniLM-L6-v2 (384-d vectors), without depending on
sentence-transformers. torch and transformers are imported when an encoder is loaded, not when this
module is imported.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from shared.errors import ModelError, ModelNotPreparedError
from workers.model_paths import is_local_path

if TYPE_CHECKING:
    import torch

__all__ = ["DEFAULT_MAX_LENGTH", "SentenceEncoder", "resolve_device"]

log = structlog.get_logger(__name__)

#: Longest input in tokens; longer texts are truncated (all-MiniLM-L6-v2 was trained on 256).
DEFAULT_MAX_LENGTH = 256


def resolve_device(device: str) -> str:
    """`auto` -> `cuda` when a GPU is visible, else `cpu`; anything else is returned as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class SentenceEncoder:
    """Turns texts into L2-normalised sentence embeddings. Thread-safe (one forward at a time)."""

    def __init__(
        self, model: Any, tokenizer: Any, *, device: str, source: str, max_length: int = DEFAULT_MAX_LENGTH
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.source = source
        self.max_length = max_length
        self.dim: int = int(model.config.hidden_size)
        #: Number of forward passes run so far (for metrics and tests).
        self.forward_passes = 0
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls, path: str, *, device: str = "auto", max_length: int = DEFAULT_MAX_LENGTH
    ) -> SentenceEncoder:
        """Load an encoder from a local directory (or a Hugging Face id already in the local cache)."""
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        local = Path(path).expanduser()
        looks_local = is_local_path(path)
        if looks_local and not local.is_dir():
            raise ModelNotPreparedError(
                f"the classifier encoder is not at {path}; run `textfleet models prepare` "
                "(or set TEXTFLEET_ENCODER_MODEL to a prepared model directory)"
            )
        resolved = resolve_device(device)
        started = time.perf_counter()
        try:
            source = str(local) if looks_local else path
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
            model = AutoModel.from_pretrained(source, local_files_only=True, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise ModelNotPreparedError(
                f"cannot load the classifier encoder {path!r} ({exc}); run `textfleet models prepare`"
            ) from exc
        model.eval()
        model.to(resolved)
        log.info(
            "encoder.loaded",
            source=path,
            device=resolved,
            dim=int(model.config.hidden_size),
            seconds=round(time.perf_counter() - started, 3),
        )
        return cls(model, tokenizer, device=resolved, source=path, max_length=max_length)

    @property
    def layer_count(self) -> int:
        """Hidden states the encoder yields: token embeddings plus one per layer."""
        return int(self.model.config.num_hidden_layers) + 1

    def encode_layers(self, texts: list[str], layers: tuple[int, ...] | None = None) -> torch.Tensor:
        """Mean-pooled hidden states, shape (len(texts), n_layers, dim), float32, not normalised.

        `layers` picks hidden states (0 = token embeddings, -1 = last layer); None means all."""
        import torch

        picked = list(range(self.layer_count)) if layers is None else list(layers)
        if not texts:
            return torch.empty((0, len(picked), self.dim), dtype=torch.float32, device=self.device)
        try:
            batch = self.tokenizer(
                texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            )
            batch = {key: value.to(self.device) for key, value in batch.items()}
            with self._lock, torch.inference_mode():
                self.forward_passes += 1
                hidden = self.model(**batch, output_hidden_states=True).hidden_states
                mask = batch["attention_mask"].unsqueeze(-1).float()
                counts = mask.sum(dim=1).clamp(min=1e-9)
                pooled = [(hidden[i].float() * mask).sum(dim=1) / counts for i in picked]
                return torch.stack(pooled, dim=1)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise ModelError(f"the encoder failed on a batch of {len(texts)} texts: {exc}") from exc

    def encode_rows(
        self,
        texts: list[str],
        windows: list[list[int]],
        layers: tuple[int, ...],
        token_layers: tuple[int, ...],
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One forward pass over `texts` (truncated; mean-pooled `layers` as in `encode_layers`) and
        `windows` (token ids with special tokens, at most `max_length` each; per-token `token_layers`
        kept). Returns pooled (len(texts), len(layers), dim) and per window (len, len(token_layers), dim).

        The `entities` task sends windows, the sentence tasks texts: one pass serves both."""
        import torch

        if not texts and not windows:
            return torch.empty((0, len(layers), self.dim), device=self.device), []
        try:
            rows = (
                list(self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"])
                if texts
                else []
            )
            batch = self.tokenizer.pad({"input_ids": [*rows, *windows]}, return_tensors="pt")
            batch = {key: value.to(self.device) for key, value in batch.items()}
            with self._lock, torch.inference_mode():
                self.forward_passes += 1
                hidden = self.model(**batch, output_hidden_states=True).hidden_states
                n = len(rows)
                mask = batch["attention_mask"][:n].unsqueeze(-1).float()
                counts = mask.sum(dim=1).clamp(min=1e-9)
                pooled = [(hidden[i][:n].float() * mask).sum(dim=1) / counts for i in layers]
                tokens: list[torch.Tensor] = []
                if windows:
                    stacked = torch.stack([hidden[i][n:].float() for i in token_layers], dim=2)
                    tokens = [stacked[j, : len(window)] for j, window in enumerate(windows)]
                pooled_out = torch.stack(pooled, dim=1) if pooled else torch.empty((n, 0, self.dim))
                return pooled_out, tokens
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise ModelError(
                f"the encoder failed on a batch of {len(texts)} texts and {len(windows)} windows: {exc}"
            ) from exc

    def encode(self, texts: list[str]) -> torch.Tensor:
        """Embeddings of `texts`, shape (len(texts), dim), float32 on the encoder's device, unit norm."""
        import torch

        if not texts:
            return torch.empty((0, self.dim), dtype=torch.float32, device=self.device)
        try:
            batch = self.tokenizer(
                texts,
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            batch = {key: value.to(self.device) for key, value in batch.items()}
            with self._lock, torch.inference_mode():
                self.forward_passes += 1
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                summed = (hidden * mask).sum(dim=1)
                counts = mask.sum(dim=1).clamp(min=1e-9)
                pooled = summed / counts
                return torch.nn.functional.normalize(pooled.float(), p=2.0, dim=1)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise ModelError(f"the encoder failed on a batch of {len(texts)} texts: {exc}") from exc
