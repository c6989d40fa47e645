"""A micro-batcher: many threads submit single items, one worker thread runs them in batches.

The worker waits for a first item, then keeps gathering until it holds `max_batch` items or
`max_wait_ms` have passed since that first item, calls `fn(items)` once and resolves each item's
future with the matching result. An exception from `fn` fails only that batch's futures; the
thread keeps serving. `close()` runs what was already submitted, then stops the thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

from shared.logging import error_fields

__all__ = ["BatcherClosedError", "BatcherStats", "MicroBatcher"]

T = TypeVar("T")
R = TypeVar("R")

log = structlog.get_logger(__name__)


class BatcherClosedError(RuntimeError):
    """Raised by `submit` after `close()`."""


@dataclass
class BatcherStats:
    """Counters of a batcher (read without a lock; for metrics and tests)."""

    batches: int = 0
    items: int = 0
    failed_batches: int = 0
    largest_batch: int = 0


_STOP = object()


class MicroBatcher(Generic[T, R]):
    """Gather single items from many threads into batches run by one worker thread."""

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        *,
        max_batch: int,
        max_wait_ms: float,
        name: str = "micro-batcher",
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if max_wait_ms < 0:
            raise ValueError("max_wait_ms must not be negative")
        self._fn = fn
        #: called with each batch's size before it runs (metrics)
        self.on_batch = on_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.stats = BatcherStats()
        self._queue: queue.SimpleQueue[tuple[T, Future[R]] | object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # --- Client side ----------------------------------------------------------------------------

    def submit(self, item: T) -> Future[R]:
        """Queue one item; its future resolves with its result (or the batch's exception)."""
        future: Future[R] = Future()
        with self._lock:
            if self._closed:
                raise BatcherClosedError("the batcher is closed")
            self._queue.put((item, future))
        return future

    def close(self, timeout_s: float | None = None) -> None:
        """Run the items already submitted, then stop the worker thread. Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._closed

    def __enter__(self) -> MicroBatcher[T, R]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- Worker side ----------------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch: list[tuple[T, Future[R]]] = [first]  # type: ignore[list-item]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    entry = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if entry is _STOP:
                    stopping = True  # run this batch, then drain what is left below
                    break
                batch.append(entry)  # type: ignore[arg-type]
            self._run_batch(batch)
        self._drain()

    def _drain(self) -> None:
        """Run whatever is still queued after the stop marker (submitted before close)."""
        leftover: list[tuple[T, Future[R]]] = []
        while True:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                break
            if entry is not _STOP:
                leftover.append(entry)  # type: ignore[arg-type]
        for start in range(0, len(leftover), self.max_batch):
            self._run_batch(leftover[start : start + self.max_batch])

    def _run_batch(self, batch: list[tuple[T, Future[R]]]) -> None:
        live = [(item, future) for item, future in batch if future.set_running_or_notify_cancel()]
        if not live:
            return
        self.stats.batches += 1
        self.stats.items += len(live)
        self.stats.largest_batch = max(self.stats.largest_batch, len(live))
        try:
            if self.on_batch is not None:
                self.on_batch(len(live))
            results = list(self._fn([item for item, _ in live]))
            if len(results) != len(live):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(live)} items")
        except BaseException as exc:  # the batch fails; the thread keeps serving
            self.stats.failed_batches += 1
            log.warning("batcher.batch_failed", size=len(live), **error_fields(exc))
            for _, future in live:
                future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(live, results, strict=True):
            future.set_result(result)
