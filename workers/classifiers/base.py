"""The classifier interface used by classify workers. Tests may swap in a fake."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from shared.constants import TaskName

__all__ = ["ClassifierSuite"]


@runtime_checkable
class ClassifierSuite(Protocol):
    """Moderation, risk and sentiment over one shared encoder; thread-safe, batched internally."""

    def classify(
        self, task: TaskName, text: str, timeout_s: float | None = None, *, model: str | None = None
    ) -> dict[str, Any]:
        """The result object of `task` (moderate, risk or sentiment) for `text`, as a JSON-able dict
        matching shared.schemas.ModerationResult / RiskResult / SentimentResult (moderation results
        also carry the `thresholds` applied). Concurrent calls from many threads are gathered into
        one forward pass. `model` names a custom moderation model (`textfleet train`; unknown ->
        InvalidInputError with code unknown_model). Raises shared.errors.ModelError on failure."""
        ...

    def classify_batch(self, task: TaskName, texts: list[str]) -> list[dict[str, Any]]:
        """The same for many texts at once, in one or more forward passes (used by benchmarks)."""
        ...

    def close(self) -> None:
        """Stop the batching thread."""
        ...
