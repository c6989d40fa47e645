"""A generation worker's default concurrency follows what its engine holds; settings still fix it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from shared.constants import GENERATE_CONCURRENCY_FALLBACK, GENERATE_TYPICAL_PROMPT_TOKENS, Queue
from shared.settings import Settings
from tests.utils.fakes import FakeEngine
from workers.engines.capacity import EngineCapacity, engine_capacity, generate_concurrency
from workers.worker import default_concurrency


def _unset() -> Settings:
    """Settings that leave the generation worker's concurrency to its engine."""
    return Settings(max_num_seqs=None, generate_concurrency=None)


def _vllm_config(*, seqs: int, tokens: int | None, blocks: int | None = None, block: int = 16) -> object:
    return SimpleNamespace(
        scheduler_config=SimpleNamespace(max_num_seqs=seqs),
        model_config=SimpleNamespace(max_model_len=2048),
        cache_config=SimpleNamespace(kv_cache_size_tokens=tokens, num_gpu_blocks=blocks, block_size=block),
    )


def test_capacity_is_read_from_the_started_engines_config() -> None:
    assert EngineCapacity.from_vllm_config(_vllm_config(seqs=128, tokens=93_000)) == EngineCapacity(
        max_num_seqs=128, max_model_len=2048, kv_cache_tokens=93_000
    )
    # older vLLM: only the blocks of the KV cache
    assert (
        EngineCapacity.from_vllm_config(_vllm_config(seqs=8, tokens=None, blocks=100)).kv_cache_tokens == 1600
    )
    assert EngineCapacity.from_vllm_config(_vllm_config(seqs=8, tokens=None)).kv_cache_tokens is None


@pytest.mark.parametrize(
    ("seqs", "kv_tokens", "per_sequence", "expected"),
    [
        (128, 93_000, 512, 128),  # a small model on CPU: the scheduler is the limit
        (1024, 4_000_000, 512, 1024),  # a GPU: hundreds of sequences
        (256, 50_000, 512, 97),  # a big model: the KV cache is the limit
        (256, 50_000, 100_000, 24),  # never more per sequence than max_model_len (2048)
        (64, 100, 512, 1),  # never zero
        (64, None, 512, 64),  # an engine that does not size its cache
    ],
)
def test_sequences_held_are_the_smaller_limit(
    seqs: int, kv_tokens: int | None, per_sequence: int, expected: int
) -> None:
    capacity = EngineCapacity(max_num_seqs=seqs, max_model_len=2048, kv_cache_tokens=kv_tokens)
    assert capacity.sequences(per_sequence) == expected


def test_default_concurrency_follows_the_engine_unless_a_setting_fixes_it() -> None:
    engine = FakeEngine()
    engine.capacity = EngineCapacity(max_num_seqs=1024, max_model_len=2048, kv_cache_tokens=10_000_000)  # type: ignore[attr-defined]
    assert engine_capacity(engine) is engine.capacity  # type: ignore[attr-defined]
    assert default_concurrency(_unset(), (Queue.GENERATE,), engine) == 1024
    small = EngineCapacity(max_num_seqs=1024, max_model_len=2048, kv_cache_tokens=100_000)
    per_job = GENERATE_TYPICAL_PROMPT_TOKENS + _unset().default_max_tokens
    assert generate_concurrency(_unset(), small) == 100_000 // per_job
    assert generate_concurrency(Settings(max_num_seqs=48, generate_concurrency=None), small) == 48
    assert generate_concurrency(Settings(max_num_seqs=48, generate_concurrency=7), small) == 7
    # an engine that reports nothing: the fallback
    assert engine_capacity(FakeEngine()) is None
    assert default_concurrency(_unset(), (Queue.GENERATE,), FakeEngine()) == GENERATE_CONCURRENCY_FALLBACK
    # both queues: generation's and the classifiers'
    both = default_concurrency(Settings(classify_concurrency=5), (Queue.GENERATE, Queue.CLASSIFY), engine)
    assert both == 1024 + 5
