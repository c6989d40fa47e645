"""A stand-in for the workers during the fuzz run: every queued `generate` and `moderate` job is ended
`succeeded` at once, with a result of its task's shape, through the fleet's own lifecycle (row written,
end announced), so the OpenAI-compatible routes, which wait for their jobs, answer in milliseconds and
their success responses are checked against the schema too. Jobs of other tasks stay queued."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from sqlalchemy import select

from shared.db.models import Job
from shared.db.session import session_scope
from shared.lifecycle import Completion, end_jobs
from shared.results import JobStatus
from shared.settings import MODERATION_CATEGORIES

__all__ = ["finishing_jobs"]

POLL_S = 0.01
_USAGE = {"prompt_tokens": 3, "completion_tokens": 2}
_RESULTS: dict[str, dict[str, Any]] = {
    "generate": {"text": "Blue sky.", "finish_reason": "stop", "usage": _USAGE},
    "moderate": {
        "flagged": False,
        "categories": dict.fromkeys(MODERATION_CATEGORIES, False),
        "category_scores": dict.fromkeys(MODERATION_CATEGORIES, 0.01),
    },
}


def _finish_queued(database_url: str, client: redis.Redis) -> int:
    with session_scope(database_url) as session:
        rows = session.execute(
            select(Job.id, Job.task).where(Job.status == JobStatus.QUEUED.value, Job.task.in_(list(_RESULTS)))
        ).all()
    if not rows:
        return 0
    completions = [
        Completion(
            job_id,
            JobStatus.SUCCEEDED,
            result=_RESULTS[task],
            usage=_USAGE if task == "generate" else None,
            expected=(JobStatus.QUEUED,),
        )
        for job_id, task in rows
    ]
    with session_scope(database_url) as session:
        end_jobs(session, client, completions)
    return len(rows)


@contextmanager
def finishing_jobs(database_url: str, redis_url: str) -> Iterator[None]:
    """Finish queued generate/moderate jobs every POLL_S seconds until the block ends."""
    stop = threading.Event()
    client = redis.Redis.from_url(redis_url)
    failures: list[BaseException] = []

    def loop() -> None:
        while not stop.wait(POLL_S):
            try:
                _finish_queued(database_url, client)
            except Exception as exc:  # reported when the block ends: the run must not hide it
                failures.append(exc)
                return

    thread = threading.Thread(target=loop, name="fuzz-finisher", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)
        client.close()
    if failures:
        raise RuntimeError("the fuzz run's job finisher failed") from failures[0]
