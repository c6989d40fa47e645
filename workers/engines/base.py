"""The generation-engine interface. The vLLM engine implements it; tests may swap in a fake."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from shared.constraints import OutputConstraint
from shared.schemas import GenerateParams

__all__ = ["GenerationEngine", "GenerationOutput", "GenerationRequest"]


@dataclass(frozen=True)
class GenerationRequest:
    """One generation: a raw prompt or chat messages (exactly one), with sampling params."""

    request_id: str
    params: GenerateParams
    prompt: str | None = None
    messages: list[dict[str, str]] | None = None
    #: max_tokens after defaults are applied (params.max_tokens or the configured default)
    max_tokens: int = 256
    #: extra vLLM sampling knobs not exposed to clients (e.g. ignore_eos for benchmarks)
    extra: dict[str, object] = field(default_factory=dict)
    #: decode only outputs that satisfy this (JSON Schema, JSON object, regex, choice); None: free text
    constraint: OutputConstraint | None = None
    #: called with the whole text so far as it grows (in the engine's thread: must be quick); None: not
    on_text: Callable[[str], None] | None = None


@dataclass(frozen=True)
class GenerationOutput:
    """What the engine produced for one request."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


@runtime_checkable
class GenerationEngine(Protocol):
    """A started engine that many threads may call at once; concurrent requests batch together."""

    def generate(self, request: GenerationRequest, timeout_s: float | None = None) -> GenerationOutput:
        """Run one request to completion (blocking the calling thread only).

        Raises shared.errors.EngineError when the model fails on this request, TimeoutError when
        `timeout_s` passes (the request is aborted in the engine first)."""
        ...

    def abort(self, request_id: str) -> None:
        """Stop a running request and free its KV cache; a no-op if it is not running."""
        ...

    def running(self) -> int:
        """Requests currently inside the engine."""
        ...

    def close(self) -> None:
        """Shut the engine down (its process and event-loop thread)."""
        ...
