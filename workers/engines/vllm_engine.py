"""The vLLM generation engine: one `AsyncLLM` on a private event-loop thread, callable from many threads.

Each worker thread calls `generate()`, which tokenizes in the calling thread, submits one coroutine
to the engine's event loop (`asyncio.run_coroutine_threadsafe`) and blocks only itself on the
result. All requests in flight meet in the same `AsyncLLM`, whose scheduler batches them
continuously, so N threads share each forward pass instead of queueing behind one another.

vLLM starts its engine core in a child process: code that creates a `VLLMEngine` must be runnable
from an `if __name__ == "__main__":` guarded entry point (pytest and Celery workers are).

Starting vLLM is in `vllm_start`, request params -> SamplingParams in `vllm_sampling`. Heavy imports
(vllm, torch, transformers) happen inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import threading
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from shared.constants import ENGINE_STOP_TIMEOUT_S
from shared.errors import EngineError, InvalidInputError
from shared.logging import error_fields, safe_message
from workers.engines.base import GenerationOutput, GenerationRequest
from workers.engines.capacity import EngineCapacity
from workers.engines.vllm_sampling import sampling_params
from workers.engines.vllm_start import Tokenizer, check_model_dir, launch, stop_loop

if TYPE_CHECKING:
    from shared.settings import Settings

__all__ = ["VLLMEngine"]

log = structlog.get_logger(__name__)

_T = TypeVar("_T")


class VLLMEngine:
    """A started vLLM engine shared by all threads of one worker process (implements GenerationEngine).

    Create it with `VLLMEngine.from_settings(settings)` and `close()` it when done (or use it as a
    context manager)."""

    def __init__(
        self,
        *,
        llm: Any,
        loop: asyncio.AbstractEventLoop,
        thread: threading.Thread,
        tokenizer: Tokenizer,
        model: str,
        max_model_len: int,
        capacity: EngineCapacity,
    ) -> None:
        """Wrap an already started AsyncLLM; use `from_settings` instead of calling this directly."""
        self._llm = llm
        self._loop = loop
        self._thread = thread
        self._tokenizer = tokenizer
        # Rust tokenizers raise "Already borrowed" when one instance is used by threads at once.
        self._tokenizer_lock = threading.Lock()
        self._closed = False
        self._close_lock = threading.Lock()
        self.model = model
        self.max_model_len = max_model_len
        #: what the started engine holds at once (sizes the worker: `workers.engines.capacity`)
        self.capacity = capacity

    # --- Construction -------------------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Settings) -> VLLMEngine:
        """Start the engine described by `settings`, warm it up, and return it (about 30 s on CPU)."""
        model = check_model_dir(settings.generation_model_path, settings.generation_model is not None)
        return cls.start(
            model,
            max_model_len=settings.max_model_len,
            max_num_seqs=settings.max_num_seqs,
            enforce_eager=settings.enforce_eager,
            dtype=settings.engine_dtype,
            gpu_memory_utilization=settings.gpu_memory_utilization,
            cpu_kvcache_gib=settings.cpu_kvcache_gib,
        )

    @classmethod
    def start(
        cls,
        model: str,
        *,
        max_model_len: int = 2048,
        max_num_seqs: int | None = None,
        enforce_eager: bool = True,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.9,
        cpu_kvcache_gib: int = 2,
        warmup: bool = True,
    ) -> VLLMEngine:
        """Start an AsyncLLM on a new event-loop thread and warm it up; see `from_settings`."""
        started = time.perf_counter()
        launched = launch(
            model,
            max_model_len=max_model_len,
            max_num_seqs=max_num_seqs,
            enforce_eager=enforce_eager,
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            cpu_kvcache_gib=cpu_kvcache_gib,
        )
        engine = cls(
            llm=launched.llm,
            loop=launched.loop,
            thread=launched.thread,
            tokenizer=launched.tokenizer,
            model=model,
            max_model_len=max_model_len,
            capacity=EngineCapacity.from_vllm_config(launched.llm.vllm_config),
        )
        # Only the engine may own the AsyncLLM: some library keeps a traceback through this frame,
        # and a reference left here would outlive close() (its __del__ then fails at exit).
        del launched
        try:
            if warmup:
                engine._warm_up()
        except BaseException:
            engine.close()
            raise
        log.info(
            "engine_started",
            model=model,
            seconds=round(time.perf_counter() - started, 2),
            max_num_seqs=engine.capacity.max_num_seqs,
            kv_cache_tokens=engine.capacity.kv_cache_tokens,
        )
        return engine

    def _warm_up(self) -> None:
        from shared.schemas import GenerateParams

        began = time.perf_counter()
        out = self.generate(
            GenerationRequest(
                request_id=f"warmup-{os.getpid()}",
                params=GenerateParams(temperature=0.0),
                prompt="Hello",
                max_tokens=4,
            ),
            timeout_s=120.0,
        )
        log.info(
            "engine_warmed_up",
            seconds=round(time.perf_counter() - began, 2),
            completion_tokens=out.completion_tokens,
        )

    # --- GenerationEngine ----------------------------------------------------------------------

    def generate(self, request: GenerationRequest, timeout_s: float | None = None) -> GenerationOutput:
        """Run one request to completion, blocking only the calling thread (see GenerationEngine)."""
        if self._closed:
            raise EngineError("the generation engine is closed")
        prompt_ids = self._prompt_token_ids(request)
        if len(prompt_ids) >= self.max_model_len:
            raise InvalidInputError(
                f"the prompt is {len(prompt_ids)} tokens long; this engine's context holds "
                f"{self.max_model_len} tokens, prompt and completion together",
                field="input",
                code="prompt_too_long",
            )
        params = sampling_params(request, len(prompt_ids), self.max_model_len)
        coro = self._generate_async(request.request_id, prompt_ids, params, request.on_text)
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError as exc:  # the loop closed under us
            coro.close()
            raise EngineError("the generation engine is closed") from exc
        try:
            return future.result(timeout=timeout_s)
        except concurrent.futures.CancelledError:
            raise EngineError(f"generation {request.request_id} was cancelled: engine shut down") from None
        except concurrent.futures.TimeoutError:
            if future.done():
                raise  # not our timeout: the coroutine itself raised it
            future.cancel()  # cancels the task; vLLM aborts the request when its generator is cancelled
            self.abort(request.request_id)
            log.warning("generation_timed_out", request_id=request.request_id, timeout_s=timeout_s)
            raise TimeoutError(
                f"generation {request.request_id} did not finish within {timeout_s} s and was aborted"
            ) from None

    def abort(self, request_id: str) -> None:
        """Stop a running request and free its KV cache; a no-op if it is not running."""
        llm = self._llm
        if llm is None or self._closed:
            return
        try:
            self._call(llm.abort(request_id), timeout_s=ENGINE_STOP_TIMEOUT_S)
        except Exception as exc:
            log.warning("engine_abort_failed", request_id=request_id, error=safe_message(exc))

    def running(self) -> int:
        """Requests currently inside the engine (waiting or being generated)."""
        llm = self._llm
        if llm is None:
            return 0
        return int(llm.get_num_unfinished_requests())

    def close(self) -> None:
        """Shut the engine down: its core process, then the event-loop thread. Safe to call twice."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        llm, self._llm = self._llm, None

        async def _shutdown(engine: Any) -> None:
            engine.shutdown()
            current = asyncio.current_task()
            tasks = [task for task in asyncio.all_tasks() if task is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self._call(_shutdown(llm), timeout_s=ENGINE_STOP_TIMEOUT_S)
        except Exception as exc:
            log.warning("engine_shutdown_failed", error=repr(exc))
        stop_loop(self._loop, self._thread)
        # AsyncLLM.__del__ shuts down again; let it run now, not at interpreter exit (where it fails).
        del llm
        gc.collect()
        log.info("engine_closed", model=self.model)

    def __enter__(self) -> VLLMEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- Internals -----------------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, _T], *, timeout_s: float | None) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout_s)

    def _prompt_token_ids(self, request: GenerationRequest) -> list[int]:
        if (request.prompt is None) == (request.messages is None):
            raise InvalidInputError("give exactly one of `prompt` or `messages`", field="input")
        with self._tokenizer_lock:
            try:
                if request.messages is not None:
                    text = self._tokenizer.apply_chat_template(
                        request.messages, tokenize=False, add_generation_prompt=True
                    )
                    if not isinstance(text, str):
                        raise EngineError("the chat template did not render to text")
                    return list(self._tokenizer.encode(text, add_special_tokens=False))
                assert request.prompt is not None
                return list(self._tokenizer.encode(request.prompt, add_special_tokens=True))
            except EngineError:
                raise
            except Exception as exc:
                raise InvalidInputError(f"the input could not be tokenized: {exc}", field="input") from exc

    async def _generate_async(
        self,
        request_id: str,
        prompt_ids: list[int],
        params: Any,
        on_text: Callable[[str], None] | None = None,
    ) -> GenerationOutput:
        from vllm.exceptions import VLLMClientError
        from vllm.inputs import tokens_input
        from vllm.v1.engine.exceptions import EngineDeadError

        llm = self._llm
        if llm is None:
            raise EngineError("the generation engine is closed")
        final: Any = None
        try:
            # Already tokenized: a rendered engine input skips vLLM's (deprecated) raw-prompt path.
            async for output in llm.generate(tokens_input(prompt_ids), params, request_id):
                final = output
                if on_text is not None and output.outputs and not output.finished:
                    on_text(output.outputs[0].text)
        except asyncio.CancelledError:
            raise
        except EngineDeadError as exc:
            log.error("engine_dead", request_id=request_id, **error_fields(exc))
            raise EngineError(f"the generation engine died: {exc}") from exc
        except (VLLMClientError, ValueError) as exc:
            raise InvalidInputError(f"the engine rejected the request: {exc}", field="params") from exc
        except Exception as exc:
            cause = exc.__cause__ or exc
            log.warning("generation_failed", request_id=request_id, **error_fields(cause))
            raise EngineError(f"generation {request_id} failed: {cause!r}") from exc
        if final is None or not final.outputs:
            return GenerationOutput(
                text="", finish_reason="abort", prompt_tokens=len(prompt_ids), completion_tokens=0
            )
        completion = final.outputs[0]
        return GenerationOutput(
            text=completion.text,
            finish_reason=str(completion.finish_reason or "abort"),
            prompt_tokens=len(final.prompt_token_ids or prompt_ids),
            completion_tokens=len(completion.token_ids),
        )
