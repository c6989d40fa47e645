"""How many jobs a generation worker holds: what its engine can hold, unless a setting says otherwise.

A started vLLM engine knows two limits: its scheduler runs at most `max_num_seqs` sequences at once
(vLLM picks it for the hardware unless `TEXTFLEET_MAX_NUM_SEQS` sets it: 128 on CPU, 256 on most
GPUs, 1024 on H100/H200-class ones), and its KV cache holds `kv_cache_tokens` tokens of all
sequences together. A typical job holds its prompt (`GENERATE_TYPICAL_PROMPT_TOKENS`) plus
`default_max_tokens` of it, never more than `max_model_len`. The worker's default concurrency is the
smaller of the two, so the engine is kept full on any machine without configuration and no job is
claimed only to wait inside an engine that has no room for it. `TEXTFLEET_GENERATE_CONCURRENCY` (or
`TEXTFLEET_MAX_NUM_SEQS`, or `textfleet worker --concurrency`) still fixes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.constants import GENERATE_CONCURRENCY_FALLBACK, GENERATE_TYPICAL_PROMPT_TOKENS
from shared.settings import Settings

__all__ = ["EngineCapacity", "engine_capacity", "generate_concurrency"]


@dataclass(frozen=True)
class EngineCapacity:
    """What a started engine can hold at once."""

    #: sequences its scheduler runs at once
    max_num_seqs: int
    #: tokens one sequence may span (prompt and completion)
    max_model_len: int
    #: tokens its KV cache holds, all sequences together; None when the engine does not say
    kv_cache_tokens: int | None = None

    def sequences(self, tokens_per_sequence: int) -> int:
        """Sequences of `tokens_per_sequence` tokens (at most `max_model_len`) it holds at once."""
        if self.kv_cache_tokens is None:
            return self.max_num_seqs
        per_sequence = max(1, min(tokens_per_sequence, self.max_model_len))
        return max(1, min(self.max_num_seqs, self.kv_cache_tokens // per_sequence))

    @classmethod
    def from_vllm_config(cls, config: Any) -> EngineCapacity:
        """Read from a started engine's `VllmConfig` (vLLM fills in the KV cache's size, as
        `cache_config.kv_cache_size_tokens` or `num_gpu_blocks * block_size`, once the engine core
        has allocated it)."""
        cache = config.cache_config
        tokens = getattr(cache, "kv_cache_size_tokens", None)
        if tokens is None and cache.num_gpu_blocks:
            tokens = int(cache.num_gpu_blocks) * int(cache.block_size)
        return cls(
            max_num_seqs=int(config.scheduler_config.max_num_seqs),
            max_model_len=int(config.model_config.max_model_len),
            kv_cache_tokens=None if tokens is None else int(tokens),
        )


def engine_capacity(engine: object) -> EngineCapacity | None:
    """The capacity a generation engine reports (`engine.capacity`), or None when it reports none."""
    capacity = getattr(engine, "capacity", None)
    return capacity if isinstance(capacity, EngineCapacity) else None


def generate_concurrency(settings: Settings, capacity: EngineCapacity | None) -> int:
    """Jobs one generation worker holds: the setting when there is one, else what the engine holds of
    typical jobs, else `GENERATE_CONCURRENCY_FALLBACK`."""
    explicit = settings.effective_generate_concurrency
    if explicit is not None:
        return explicit
    if capacity is None:
        return GENERATE_CONCURRENCY_FALLBACK
    return capacity.sequences(GENERATE_TYPICAL_PROMPT_TOKENS + settings.default_max_tokens)
