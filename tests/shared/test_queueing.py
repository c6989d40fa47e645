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

from shared.constants import PRIORITY_DEFAULT, TaskName, celery_task_name
from shared.db.repository import new_job_id
from shared.errors import QueueUnavailableError
from shared.queueing import celery_priority, job_groups, job_priority, make_celery, send_job, send_jobs
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


def test_send_jobs_writes_each_job_on_its_priority_list(clean_redis_url: str) -> None:
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


def test_classify_jobs_travel_in_groups_and_generations_alone(clean_redis_url: str) -> None:
    app = make_celery(Settings(redis_url=clean_redis_url, job_group_size=32))
    moderations = [(new_job_id(), TaskName.MODERATE, 5) for _ in range(70)]
    urgent = [(new_job_id(), TaskName.MODERATE, 9) for _ in range(2)]
    generations = [(new_job_id(), TaskName.GENERATE, 5) for _ in range(3)]
    send_jobs(app, moderations + generations + urgent)

    lists = _lists(clean_redis_url)
    bodies = {
        key: [json.loads(base64.b64decode(m["body"]))[0] for m in reversed(messages)]  # LPUSHed: oldest last
        for key, messages in lists.items()
    }
    ids = [job_id for job_id, _, _ in moderations]
    assert bodies["classify:4"] == [ids[:32], ids[32:64], ids[64:]]  # in order, at most 32 a message
    assert bodies["classify"] == [[job_id for job_id, _, _ in urgent]]  # priority 9: a group of its own
    assert bodies["generate:4"] == [[job_id] for job_id, _, _ in generations]
    grouped = lists["classify:4"][0]["headers"]["id"]
    assert grouped not in ids  # a group's task id is its own; a lone job's is the job's
    assert [m["headers"]["id"] for m in reversed(lists["generate:4"])] == [j for j, _, _ in generations]
    app.close()


@pytest.mark.parametrize(
    ("size", "expected"),
    [(1, [("a",), ("b",), ("c",)]), (2, [("a", "b"), ("c",)]), (50, [("a", "b", "c")])],
)
def test_job_groups_cut_in_order(size: int, expected: list[tuple[str, ...]]) -> None:
    jobs = [(job_id, TaskName.SENTIMENT, 5) for job_id in "abc"]
    assert [ids for _, _, ids in job_groups(jobs, size)] == expected


def test_job_groups_keep_tasks_and_priorities_apart() -> None:
    jobs = [
        ("a", TaskName.RISK, 5),
        ("b", TaskName.SENTIMENT, 5),
        ("c", TaskName.RISK, 1),
        ("d", TaskName.RISK, 5),
    ]
    assert list(job_groups(jobs, 10)) == [
        (TaskName.RISK, 5, ("a", "d")),
        (TaskName.SENTIMENT, 5, ("b",)),
        (TaskName.RISK, 1, ("c",)),
    ]


def test_a_real_worker_runs_pipelined_jobs(clean_redis_url: str) -> None:
    app = make_celery(Settings(redis_url=clean_redis_url))
    seen: list[str] = []
    done = threading.Event()
    expected = 25

    def run(*job_ids: str) -> None:
        seen.extend(job_ids)
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


@pytest.mark.parametrize("priority", [0, 5, 9])
def test_a_delivered_message_gives_back_its_job_priority(priority: int) -> None:
    assert job_priority({"priority": celery_priority(priority)}) == priority


def test_a_message_without_a_priority_runs_at_the_default() -> None:
    assert job_priority({}) == job_priority(None) == PRIORITY_DEFAULT
