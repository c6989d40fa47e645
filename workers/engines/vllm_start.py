"""Starting and stopping vLLM: the model directory check, the `AsyncLLM` on its own event-loop thread,
and the stat logger that feeds the KV-cache gauge. Used by `workers.engines.vllm_engine.VLLMEngine`.

KV-cache usage: vLLM 0.32's AsyncLLM reports `SchedulerStats.kv_cache_usage` to its stat loggers only
when stats are on. Passing `stat_loggers=[kv_cache_stat_logger()]` to `AsyncLLM.from_engine_args`
turns them on *without* vLLM's default loggers (no log lines, no `vllm:*` Prometheus metrics) and sets
`textfleet_engine_kv_cache_usage_ratio` on every engine step that reports scheduler stats.

Heavy imports (vllm, transformers) happen inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import structlog

from shared.constants import ENGINE_STOP_TIMEOUT_S
from shared.errors import EngineError, ModelNotPreparedError
from shared.metrics import ENGINE_KV_CACHE_USAGE
from workers.model_paths import is_local_path

__all__ = [
    "ENGINE_STOP_TIMEOUT_S",
    "Launched",
    "Tokenizer",
    "check_model_dir",
    "kv_cache_stat_logger",
    "launch",
    "stop_loop",
]

log = structlog.get_logger(__name__)


class Tokenizer(Protocol):
    """The part of a Hugging Face tokenizer the engine uses."""

    chat_template: str | None

    def encode(self, text: str, *, add_special_tokens: bool = ...) -> list[int]: ...

    def apply_chat_template(self, conversation: list[dict[str, str]], **kwargs: Any) -> Any: ...


def _is_local_path(model: str, explicit: bool) -> bool:
    """Whether `model` names a local directory rather than a Hugging Face id."""
    if not explicit:
        return True  # the prepared default under models_dir
    return is_local_path(model)


def check_model_dir(model: str, explicit: bool) -> str:
    """Resolve a local model directory, raising ModelNotPreparedError when it is not usable; a Hugging Face
    id (only when `explicit`ly configured) is returned unchanged."""
    if not _is_local_path(model, explicit):
        return model
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ModelNotPreparedError(
            f"generation model directory {path} does not exist; run `textfleet models prepare` "
            "(or set TEXTFLEET_GENERATION_MODEL to a model directory or Hugging Face id)"
        )
    if not (path / "config.json").is_file():
        raise ModelNotPreparedError(
            f"{path} holds no config.json, so it is not a Hugging Face model directory; "
            "run `textfleet models prepare` again"
        )
    return str(path)


@dataclass(frozen=True)
class Launched:
    """A started AsyncLLM, the event loop (and its thread) it lives on, and its tokenizer."""

    llm: Any
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    tokenizer: Tokenizer


def launch(
    model: str,
    *,
    max_model_len: int,
    max_num_seqs: int | None,
    enforce_eager: bool,
    dtype: str,
    gpu_memory_utilization: float,
    cpu_kvcache_gib: int,
) -> Launched:
    """Start an AsyncLLM for `model` on a new event-loop thread. Raises EngineError when it fails.

    `max_num_seqs` None lets vLLM choose its default for the hardware. (Starting it with its OpenAI
    server's usage context, whose batch defaults differ, slowed the structured-output e2e test past its
    deadline on CPU, so the engine keeps the library's own defaults.)"""
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("VLLM_DO_NOT_TRACK", "1")

    from vllm.platforms import current_platform

    on_cpu = bool(current_platform.is_cpu())
    if on_cpu:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(cpu_kvcache_gib))

    from transformers import AutoTokenizer
    from vllm.config import StructuredOutputsConfig
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    engine_args = AsyncEngineArgs(
        model=model,
        tokenizer=model,
        max_model_len=max_model_len,
        max_num_seqs=max_num_seqs,
        enforce_eager=enforce_eager,
        dtype=cast(Any, dtype),
        gpu_memory_utilization=gpu_memory_utilization,
        # Stats on: vLLM's own Prometheus metrics (vllm:kv_cache_usage_perc, ...) land in this
        # process's registry (served on the worker's side port) and feed our KV-cache gauge.
        disable_log_stats=False,
        enable_log_requests=False,
        # Structured output (issue 14): xgrammar only, no silent fallback to another backend (the
        # API admits only schemas xgrammar enforces), and no free whitespace between JSON tokens:
        # small models otherwise loop on blanks until max_tokens and the JSON never closes.
        structured_outputs_config=StructuredOutputsConfig(backend="xgrammar", disable_any_whitespace=True),
    )
    tokenizer: Tokenizer = AutoTokenizer.from_pretrained(model)

    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def _run_loop() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    thread = threading.Thread(target=_run_loop, name="vllm-engine-loop", daemon=True)
    thread.start()
    ready.wait()

    async def _create() -> Any:
        # Created on the loop thread: its ZMQ sockets and output task belong to this loop.
        return AsyncLLM.from_engine_args(engine_args, stat_loggers=[kv_cache_stat_logger()])

    log.info(
        "engine_starting",
        model=model,
        max_model_len=max_model_len,
        max_num_seqs=max_num_seqs,
        dtype=dtype,
        enforce_eager=enforce_eager,
        device="cpu" if on_cpu else str(current_platform.device_type),
        cpu_kvcache_gib=os.environ.get("VLLM_CPU_KVCACHE_SPACE") if on_cpu else None,
    )
    try:
        # No local name may hold the AsyncLLM: some library keeps a traceback through this frame, and
        # a reference left in it would outlive the engine's close() (its __del__ then fails at exit).
        return Launched(
            llm=asyncio.run_coroutine_threadsafe(_create(), loop).result(),
            loop=loop,
            thread=thread,
            tokenizer=tokenizer,
        )
    except BaseException as exc:
        stop_loop(loop, thread)
        raise EngineError(f"the vLLM engine failed to start for {model}: {exc}") from exc


def stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    """Stop an event loop running on `thread`, join the thread, and close the loop."""
    if loop.is_running():
        loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=ENGINE_STOP_TIMEOUT_S)
    if not thread.is_alive() and not loop.is_closed():
        loop.close()


def kv_cache_stat_logger() -> Callable[..., Any]:
    """A vLLM stat-logger factory (`AsyncLLM.from_engine_args(..., stat_loggers=[...])`) that sets
    `textfleet_engine_kv_cache_usage_ratio` from the scheduler's stats. Imports vLLM."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class KVCacheStatLogger(StatLoggerBase):
        def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
            self.engine_index = engine_index

        def record(
            self,
            scheduler_stats: Any,
            iteration_stats: Any,
            mm_cache_stats: Any = None,
            engine_idx: int = 0,
        ) -> None:
            if scheduler_stats is not None:
                ENGINE_KV_CACHE_USAGE.set(float(scheduler_stats.kv_cache_usage))

        def log_engine_initialized(self) -> None:
            return None

    return KVCacheStatLogger
