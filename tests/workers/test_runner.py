"""`workers.runner.JobRunner`: a process's jobs claimed together, never more than its capacity at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import wait

import pytest

from shared.constants import TaskName
from shared.schemas import JobStatus
from tests.utils.factories import claim_for
from workers.runner import JobLeftError, JobRunner
from workers.store import Claim

TASK = TaskName.MODERATE
WAIT_S = 10.0


class Path:
    """A fake job path: claims every id (or refuses some), runs until released, counts what it saw."""

    def __init__(
        self, *, refused: frozenset[str] = frozenset(), expired: frozenset[str] = frozenset()
    ) -> None:
        self.refused, self.expired = refused, expired
        self.claims: list[list[str]] = []
        self.release = threading.Event()
        self.running = 0
        self.most_running = 0
        self.started = threading.Semaphore(0)
        self._lock = threading.Lock()

    def claim(self, job_ids: list[str]) -> list[Claim | None]:
        self.claims.append(list(job_ids))
        return [
            None if job_id in self.refused else claim_for(job_id, expired=job_id in self.expired)
            for job_id in job_ids
        ]

    @staticmethod
    def ready(claim: Claim | None, task: TaskName) -> bool:
        return claim is not None and not claim.expired

    def run(self, claim: Claim, task: TaskName) -> JobStatus | None:
        with self._lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        self.started.release()
        try:
            assert self.release.wait(WAIT_S), "the test never released the jobs"
            return JobStatus.SUCCEEDED
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def draining() -> threading.Event:
    return threading.Event()


def _runner(path: Path, capacity: int, draining: threading.Event) -> JobRunner:
    return JobRunner(capacity, claim=path.claim, ready=path.ready, run=path.run, draining=draining)


@pytest.fixture
def path() -> Iterator[Path]:
    path = Path()
    yield path
    path.release.set()


def _started(path: Path, count: int) -> None:
    for _ in range(count):
        assert path.started.acquire(timeout=WAIT_S)


def test_a_group_is_claimed_in_one_statement_and_all_its_jobs_run(
    path: Path, draining: threading.Event
) -> None:
    runner = _runner(path, 8, draining)
    futures = runner.submit([f"j{i}" for i in range(8)], TASK)
    _started(path, 8)
    assert path.claims == [[f"j{i}" for i in range(8)]]
    path.release.set()
    assert all(f.result(timeout=WAIT_S) is JobStatus.SUCCEEDED for f in futures)
    runner.close()


def test_never_more_than_capacity_at_once(path: Path, draining: threading.Event) -> None:
    runner = _runner(path, 4, draining)
    futures = runner.submit([f"a{i}" for i in range(10)], TASK) + runner.submit(
        [f"b{i}" for i in range(10)], TASK
    )
    _started(path, 4)
    assert runner.running == 4
    assert not path.started.acquire(timeout=0.2)  # the fifth waits for a free slot
    path.release.set()
    done, _ = wait(futures, timeout=WAIT_S)
    assert len(done) == 20 and path.most_running == 4
    assert sorted(job_id for ids in path.claims for job_id in ids) == sorted(
        f"{p}{i}" for p in "ab" for i in range(10)
    )
    assert runner.running == 0
    runner.close()


def test_jobs_not_claimed_or_expired_end_at_once_and_give_their_slot_back(draining: threading.Event) -> None:
    path = Path(refused=frozenset({"gone"}), expired=frozenset({"late"}))
    path.release.set()
    runner = _runner(path, 1, draining)
    gone, late, fine = runner.submit(["gone", "late", "fine"], TASK)
    assert gone.result(timeout=WAIT_S) is None
    assert late.result(timeout=WAIT_S) is JobStatus.EXPIRED
    assert fine.result(timeout=WAIT_S) is JobStatus.SUCCEEDED
    assert runner.running == 0
    runner.close()


def test_a_draining_worker_claims_no_more_and_leaves_the_rest_queued(
    path: Path, draining: threading.Event
) -> None:
    runner = _runner(path, 2, draining)
    futures = runner.submit(["r1", "r2", "w1", "w2", "w3"], TASK)
    _started(path, 2)
    draining.set()
    for future in futures[2:]:
        with pytest.raises(JobLeftError):
            future.result(timeout=WAIT_S)
    path.release.set()  # the running ones still end as they would
    assert [f.result(timeout=WAIT_S) for f in futures[:2]] == [JobStatus.SUCCEEDED] * 2
    assert [job_id for ids in path.claims for job_id in ids] == ["r1", "r2"]
    runner.close()


def test_a_failed_claim_fails_those_jobs_only(draining: threading.Event) -> None:
    path = Path()
    path.release.set()
    calls = 0

    def claim(job_ids: list[str]) -> list[Claim | None]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database unreachable")
        return path.claim(job_ids)

    runner = JobRunner(1, claim=claim, ready=path.ready, run=path.run, draining=draining)
    first = runner.submit(["x"], TASK)[0]
    with pytest.raises(ConnectionError):
        first.result(timeout=WAIT_S)
    assert runner.submit(["y"], TASK)[0].result(timeout=WAIT_S) is JobStatus.SUCCEEDED  # its slot came back
    runner.close()


def test_closing_leaves_waiting_jobs_and_refuses_more(path: Path, draining: threading.Event) -> None:
    runner = _runner(path, 1, draining)
    running, waiting = runner.submit(["r", "w"], TASK)
    _started(path, 1)
    closer = threading.Thread(target=runner.close)
    closer.start()
    with pytest.raises(JobLeftError):
        waiting.result(timeout=WAIT_S)
    path.release.set()
    closer.join(WAIT_S)
    assert running.result(timeout=WAIT_S) is JobStatus.SUCCEEDED
    with pytest.raises(RuntimeError):
        runner.submit(["z"], TASK)


def test_capacity_is_at_least_one(draining: threading.Event) -> None:
    with pytest.raises(ValueError, match="at least one"):
        JobRunner(0, claim=Path().claim, ready=Path.ready, run=Path().run, draining=draining)


def test_a_more_urgent_message_overtakes_the_jobs_already_waiting(
    path: Path, draining: threading.Event
) -> None:
    runner = _runner(path, 1, draining)
    first = runner.submit(["first"], TASK, priority=0)
    _started(path, 1)  # holds the only slot
    backlog = runner.submit(["low1", "low2"], TASK, priority=0)
    urgent = runner.submit(["urgent"], TASK, priority=9)
    later = runner.submit(["mid"], TASK, priority=5)
    path.release.set()
    wait([*first, *backlog, *urgent, *later], timeout=WAIT_S)
    assert [job_id for ids in path.claims for job_id in ids] == ["first", "urgent", "mid", "low1", "low2"]
    runner.close()
