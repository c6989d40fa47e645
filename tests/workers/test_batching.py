"""MicroBatcher: batching under concurrency, max_wait, exception isolation, close (no model)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from workers.batching import BatcherClosedError, MicroBatcher


class Recorder:
    """A batch function that doubles numbers and records batch sizes."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.sizes: list[int] = []
        self.delay_s = delay_s
        self.lock = threading.Lock()

    def __call__(self, items: list[int]) -> list[int]:
        with self.lock:
            self.sizes.append(len(items))
        if self.delay_s:
            time.sleep(self.delay_s)
        return [item * 2 for item in items]


def test_concurrent_submits_are_batched() -> None:
    fn = Recorder(delay_s=0.01)
    with MicroBatcher(fn, max_batch=16, max_wait_ms=20) as batcher:
        barrier = threading.Barrier(32)

        def one(i: int) -> int:
            barrier.wait()
            return batcher.submit(i).result(timeout=10)

        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(one, range(32)))
    assert results == [i * 2 for i in range(32)]
    assert sum(fn.sizes) == 32
    assert max(fn.sizes) > 1
    assert len(fn.sizes) < 32
    assert all(size <= 16 for size in fn.sizes)
    assert batcher.stats.items == 32
    assert batcher.stats.largest_batch == max(fn.sizes)


def test_max_batch_caps_batch_size() -> None:
    fn = Recorder()
    gate = threading.Event()

    def slow_first(items: list[int]) -> list[int]:
        gate.wait(5)
        return fn(items)

    with MicroBatcher(slow_first, max_batch=4, max_wait_ms=50) as batcher:
        futures = [batcher.submit(i) for i in range(10)]
        gate.set()
        assert [f.result(timeout=5) for f in futures] == [i * 2 for i in range(10)]
    assert all(size <= 4 for size in fn.sizes)
    assert sum(fn.sizes) == 10


def test_single_item_waits_at_most_max_wait() -> None:
    fn = Recorder()
    with MicroBatcher(fn, max_batch=64, max_wait_ms=50) as batcher:
        started = time.perf_counter()
        assert batcher.submit(21).result(timeout=5) == 42
        elapsed = time.perf_counter() - started
    assert 0.04 <= elapsed < 1.0, elapsed
    assert fn.sizes == [1]


def test_zero_wait_runs_at_once() -> None:
    fn = Recorder()
    with MicroBatcher(fn, max_batch=64, max_wait_ms=0) as batcher:
        started = time.perf_counter()
        assert batcher.submit(1).result(timeout=5) == 2
        assert time.perf_counter() - started < 0.5


def test_items_in_the_wait_window_share_a_batch() -> None:
    fn = Recorder()
    with MicroBatcher(fn, max_batch=64, max_wait_ms=300) as batcher:
        first = batcher.submit(1)
        time.sleep(0.05)
        second = batcher.submit(2)
        assert (first.result(timeout=5), second.result(timeout=5)) == (2, 4)
    assert fn.sizes == [2]


def test_exception_fails_only_its_batch() -> None:
    calls: list[list[int]] = []

    def fn(items: list[int]) -> list[int]:
        calls.append(items)
        if -1 in items:
            raise ValueError("bad item")
        return [item + 1 for item in items]

    with MicroBatcher(fn, max_batch=8, max_wait_ms=0) as batcher:
        bad = batcher.submit(-1)
        with pytest.raises(ValueError, match="bad item"):
            bad.result(timeout=5)
        assert batcher.submit(1).result(timeout=5) == 2  # the thread still serves
        assert batcher.stats.failed_batches == 1


def test_wrong_result_count_fails_the_batch() -> None:
    def nothing(items: list[int]) -> list[int]:
        return []

    with (
        MicroBatcher(nothing, max_batch=8, max_wait_ms=0) as batcher,
        pytest.raises(RuntimeError, match="returned 0 results for 1 items"),
    ):
        batcher.submit(1).result(timeout=5)


def test_close_drains_pending_items_and_refuses_new_ones() -> None:
    fn = Recorder(delay_s=0.02)
    batcher = MicroBatcher(fn, max_batch=2, max_wait_ms=0)
    futures = [batcher.submit(i) for i in range(7)]
    batcher.close()
    assert [f.result(timeout=0) for f in futures] == [i * 2 for i in range(7)]
    assert batcher.closed
    with pytest.raises(BatcherClosedError):
        batcher.submit(1)
    batcher.close()  # idempotent
    assert not batcher._thread.is_alive()


def test_cancelled_futures_are_skipped() -> None:
    fn = Recorder()
    gate = threading.Event()

    def gated(items: list[int]) -> list[int]:
        gate.wait(5)
        return fn(items)

    with MicroBatcher(gated, max_batch=1, max_wait_ms=0) as batcher:
        running = batcher.submit(1)
        time.sleep(0.05)
        queued = batcher.submit(2)
        assert queued.cancel()
        gate.set()
        assert running.result(timeout=5) == 2
    assert sum(fn.sizes) == 1


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(lambda items: items, max_batch=0, max_wait_ms=1)
    with pytest.raises(ValueError, match="max_wait_ms"):
        MicroBatcher(lambda items: items, max_batch=1, max_wait_ms=-1)
