"""Fake engines for fast unit tests of job logic (never the only proof: see tests/e2e)."""

from __future__ import annotations

import threading
from typing import Any

from shared.constants import TaskName
from shared.errors import EngineError, EngineOverloadedError, ModelError
from shared.settings import MODERATION_CATEGORIES
from workers.engines.base import GenerationOutput, GenerationRequest


class FakeEngine:
    """Echoes the prompt. Markers in the prompt: FAIL -> EngineError, CRASH -> RuntimeError,
    BUSY -> EngineOverloadedError (retryable), SLOW -> TimeoutError, ABORT -> finish_reason "abort"."""

    def __init__(self, fail_on: str = "FAIL", crash_on: str = "CRASH") -> None:
        self.fail_on = fail_on
        self.crash_on = crash_on
        self.requests: list[GenerationRequest] = []
        self.timeouts: list[float | None] = []
        self.aborted: list[str] = []
        self.lock = threading.Lock()

    def generate(self, request: GenerationRequest, timeout_s: float | None = None) -> GenerationOutput:
        with self.lock:
            self.requests.append(request)
            self.timeouts.append(timeout_s)
        text = request.prompt or " / ".join(m["content"] for m in request.messages or [])
        if self.fail_on in text:
            raise EngineError("the model refused this input")
        if self.crash_on in text:
            raise RuntimeError("unexpected bug in the model code")
        if "BUSY" in text:
            raise EngineOverloadedError("the engine is full")
        if "SLOW" in text:
            raise TimeoutError
        if "ABORT" in text:
            return GenerationOutput(text="", finish_reason="abort", prompt_tokens=1, completion_tokens=0)
        words = text.split()[: request.max_tokens]
        return GenerationOutput(
            text=" ".join(words),
            finish_reason="stop",
            prompt_tokens=len(text.split()),
            completion_tokens=len(words),
        )

    def abort(self, request_id: str) -> None:
        with self.lock:
            self.aborted.append(request_id)

    def running(self) -> int:
        return 0

    def close(self) -> None:
        return None


class FakeClassifiers:
    """Scores texts by length; raises ModelError on texts containing `fail_on`."""

    def __init__(self, fail_on: str = "FAIL") -> None:
        self.fail_on = fail_on

    def classify(self, task: TaskName, text: str, timeout_s: float | None = None) -> dict[str, Any]:
        if self.fail_on in text:
            raise ModelError("classifier failed")
        score = min(len(text) / 100, 1.0)
        if task is TaskName.MODERATE:
            return {
                "flagged": score >= 0.5,
                "categories": dict.fromkeys(MODERATION_CATEGORIES, score >= 0.5),
                "category_scores": dict.fromkeys(MODERATION_CATEGORIES, score),
            }
        if task is TaskName.RISK:
            return {
                "score": score,
                "level": "high" if score > 0.7 else "low",
                "labels": {"fraud_scam": score},
            }
        if task is TaskName("entities"):
            word = text.split()[0] if text.split() else ""
            start = text.find(word)
            return {
                "entities": [
                    {"text": word, "type": "MISC", "start": start, "end": start + len(word), "score": score}
                ]
                if word
                else []
            }
        return {
            "label": "positive",
            "scores": {"negative": 0.1, "neutral": 0.2, "positive": 0.7},
        }

    def classify_batch(self, task: TaskName, texts: list[str]) -> list[dict[str, Any]]:
        return [self.classify(task, t) for t in texts]

    def close(self) -> None:
        return None


class ScriptedEngine(FakeEngine):
    """Returns the queued outputs in order (text, finish_reason), recording each request; for tests of
    constrained generation, where the real engine's output is decided by the grammar."""

    def __init__(self, *outputs: tuple[str, str]) -> None:
        super().__init__()
        self.outputs = list(outputs)

    def generate(self, request: GenerationRequest, timeout_s: float | None = None) -> GenerationOutput:
        with self.lock:
            self.requests.append(request)
            self.timeouts.append(timeout_s)
            text, finish_reason = self.outputs.pop(0)
        return GenerationOutput(
            text=text, finish_reason=finish_reason, prompt_tokens=7, completion_tokens=len(text.split())
        )
