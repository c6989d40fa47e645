"""`shared.queueing`: pipelined sends are ordinary Celery task messages that a real worker runs."""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

import pytest
import redis
from celery.contrib.testing.worker import start_worker

from shared.constants import TaskName, celery_task_name
from shared.db.repository import new_job_id
from shared.errors import QueueUnavailableError
from shared.queueing import make_celery, send_job, send_jobs
from shared.settings import Settings


def _lists(url: str) -> dict[str, list[dict[str, Any]]]:
    client = redis.Redis.from_url(url)
    try:
        out: dict[str, list[dict[str, Any]]] = {}
        for key in client.keys("*"):
            if client.type(key) == b"list":
                out[key.decode()] = [json.loads(raw) for raw in client.lrange(key, 0, -1)]
        return out
    finally:
        client.close()


def test_send_jobs_writes_one_message_per_job_on_its_priority_list(clean_redis_url: str) -> None:
    app = make_celery(Settings(redis_url=clean_redis_url))
    jobs = [(new_job_id(), TaskName.SENTIMENT, p) for p in range(10)] + [(new_job_id(), TaskName.GENERATE, 5)]
    send_jobs(app, jobs)

    lists = _lists(clean_redis_url)
    assert sum(len(v) for v in lists.values()) == len(jobs)
    for job_id, task, priority in jobs:
        key = ("classify" if task is TaskName.SENTIMENT else "generate") + (
            "" if priority == 9 else f":{9 - priority}"
        )
        (message,) = [m for m in lists[key] if m["headers"]["id"] == job_id]
        assert message["headers"]["task"] == celery_task_name(task)
        assert message["headers"]["id"] == job_id
        assert message["properties"]["priority"] == 9 - priority
        args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        assert args == [job_id]
        assert kwargs == {}
    app.close()


def test_messages_match_what_send_task_sends(clean_redis_url: str) -> None:
    app = make_celery(Settings(redis_url=clean_redis_url))
    ours = new_job_id()
    send_job(app, ours, TaskName.RISK, 7)
    theirs = new_job_id()
    app.send_task(
        celery_task_name(TaskName.RISK), args=[theirs], task_id=theirs, queue="classify", priority=2
    )
    a, b = _lists(clean_redis_url)["classify:2"]
    assert sorted(a["headers"]) == sorted(b["headers"])
    assert sorted(a["properties"]) == sorted(b["properties"])
    assert a["properties"]["delivery_info"] == b["properties"]["delivery_info"]
    assert a["content-type"] == b["content-type"]
    app.close()


def test_a_real_worker_runs_pipelined_jobs(clean_redis_url: str) -> None:
    app = make_celery(Settings(redis_url=clean_redis_url))
    seen: list[str] = []
    done = threading.Event()
    expected = 25

    def run(job_id: str) -> None:
        seen.append(job_id)
        if len(seen) == expected:
            done.set()

    for task in (TaskName.SENTIMENT, TaskName.GENERATE):
        app.task(run, name=celery_task_name(task), acks_late=True, ignore_result=True)
    jobs = [
        (new_job_id(), TaskName.SENTIMENT if i % 2 else TaskName.GENERATE, i % 10) for i in range(expected)
    ]
    send_jobs(app, jobs)

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        deadline = time.monotonic() + 30
        while not done.is_set() and time.monotonic() < deadline:
            done.wait(0.1)
    assert sorted(seen) == sorted(job_id for job_id, _, _ in jobs)
    app.close()


def test_unreachable_broker_raises_queue_unavailable() -> None:
    app = make_celery(Settings(redis_url="redis://127.0.0.1:1/0"))
    with pytest.raises(QueueUnavailableError):
        send_jobs(app, [(new_job_id(), TaskName.MODERATE, 5)])
    app.close()


def test_nothing_to_send_is_a_no_op() -> None:
    app = make_celery(Settings(redis_url="redis://127.0.0.1:1/0"))
    send_jobs(app, [])
    app.close()
