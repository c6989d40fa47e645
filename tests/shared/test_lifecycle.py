"""`shared.lifecycle.end_jobs`, the one path to a terminal state, on a real database and Redis: the
conditional write, the `completed` delivery row, the announcement, the outstanding-set removal and the
engine abort of a running job ended by someone other than its worker."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import event, select, update

from shared.constants import CANCEL_CHANNEL, job_events_channel, outstanding_key
from shared.db import session_scope
from shared.db.models import Job, WebhookDelivery
from shared.lifecycle import Completion, end_jobs
from shared.schemas import JobStatus
from shared.webhooks.queue import DUE_KEY
from tests.utils.factories import add_jobs, job_row, load_job, webhook_job_row

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def client(clean_redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(clean_redis_url)
    yield client
    client.close()


def _insert(
    database_url: str, *jobs: Job, status: JobStatus = JobStatus.QUEUED, worker: str | None = None
) -> None:
    with session_scope(database_url) as session:
        add_jobs(session, jobs)
    with session_scope(database_url) as session:
        session.execute(
            update(Job).where(Job.id.in_([j.id for j in jobs])).values(status=status.value, worker=worker)
        )


def _messages(pubsub: redis.client.PubSub, count: int) -> list[tuple[str, str]]:
    out = []
    while len(out) < count:
        message = pubsub.get_message(timeout=5)
        assert message is not None, f"only {out} published"
        if message["type"] == "message":
            out.append((message["channel"].decode(), message["data"].decode()))
    return out


def test_a_batch_ends_writes_records_and_announces_once(database_url: str, client: redis.Redis) -> None:
    hooked = webhook_job_row("https://hooks.example.com/x")
    plain = job_row()
    _insert(database_url, hooked, plain, status=JobStatus.RUNNING, worker="w1")
    client.zadd(outstanding_key("classify"), {hooked.id: 1, plain.id: 2, "01OTHERJOB0000000000000000": 3})
    pubsub = client.pubsub()
    pubsub.subscribe(job_events_channel(hooked.id), job_events_channel(plain.id), CANCEL_CHANNEL)
    completions = [
        Completion(plain.id, JobStatus.SUCCEEDED, result={"label": "positive"}, worker="w1"),
        Completion(hooked.id, JobStatus.FAILED, error={"code": "x", "message": "y"}, worker="w1"),
        Completion(plain.id, JobStatus.FAILED, error={"code": "late", "message": "z"}, worker="w1"),
    ]

    with session_scope(database_url) as session:
        ended = end_jobs(session, client, completions)

    assert [e.status if e else None for e in ended] == [JobStatus.SUCCEEDED, JobStatus.FAILED, None]
    assert load_job(database_url, plain.id).status == "succeeded"  # the first completion won
    assert load_job(database_url, hooked.id).status == "failed"
    with session_scope(database_url) as session:
        events = session.execute(
            select(WebhookDelivery.job_id, WebhookDelivery.id, WebhookDelivery.event)
        ).all()
    delivery = [(job_id, event) for job_id, _, event in events if job_id in {hooked.id, plain.id}]
    assert delivery == [(hooked.id, "completed")]
    due = {m.decode() for m in client.zrange(DUE_KEY, 0, -1)}
    assert next(i for j, i, _ in events if j == hooked.id) in due
    assert {m.decode() for m in client.zrange(outstanding_key("classify"), 0, -1)} == {
        "01OTHERJOB0000000000000000"
    }
    published = sorted(_messages(pubsub, 2))
    assert published == sorted(
        [
            (job_events_channel(plain.id), json.dumps({"job_id": plain.id, "status": "succeeded"})),
            (job_events_channel(hooked.id), json.dumps({"job_id": hooked.id, "status": "failed"})),
        ]
    )
    assert pubsub.get_message(timeout=0.5) is None  # its own worker ended them: no abort
    pubsub.close()


def test_a_cancel_ends_a_queued_or_running_job_and_aborts_only_the_running(
    database_url: str, client: redis.Redis
) -> None:
    queued, running, done = job_row(), job_row(), job_row()
    _insert(database_url, queued)
    _insert(database_url, running, status=JobStatus.RUNNING, worker="w1")
    _insert(database_url, done, status=JobStatus.SUCCEEDED)
    pubsub = client.pubsub()
    pubsub.subscribe(CANCEL_CHANNEL)
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"  # type: ignore[index]

    with session_scope(database_url) as session:
        ended = end_jobs(session, client, [Completion.canceled(j.id) for j in (queued, running, done)])

    assert [(e.previous if e else None) for e in ended] == [JobStatus.QUEUED, JobStatus.RUNNING, None]
    assert {load_job(database_url, j.id).status for j in (queued, running)} == {"canceled"}
    assert load_job(database_url, done.id).status == "succeeded"
    assert _messages(pubsub, 1) == [(CANCEL_CHANNEL, running.id)]
    assert pubsub.get_message(timeout=0.5) is None
    pubsub.close()


def test_a_completion_from_another_worker_is_ignored(database_url: str, client: redis.Redis) -> None:
    job = job_row()
    _insert(database_url, job, status=JobStatus.RUNNING, worker="w1")
    with session_scope(database_url) as session:
        ended = end_jobs(session, client, [Completion(job.id, JobStatus.SUCCEEDED, worker="w2")])
    assert ended == [None]
    assert load_job(database_url, job.id).status == "running"


def test_a_workers_batch_is_written_in_one_statement_and_only_its_own_running_jobs_end(
    database_url: str, client: redis.Redis
) -> None:
    """A worker's outcomes are grouped (`worker_ends.finish_many`): each row gets its own state, result,
    error and usage, columns NULL in every row included; jobs it does not hold are left as they are."""
    generated, classified, failed = job_row("generate"), job_row(), job_row()
    others, queued = job_row(), job_row()
    _insert(database_url, generated, classified, failed, status=JobStatus.RUNNING, worker="w1")
    _insert(database_url, others, status=JobStatus.RUNNING, worker="w2")
    _insert(database_url, queued)
    usage = {"prompt_tokens": 7, "completion_tokens": 3}
    completions = [
        Completion(generated.id, JobStatus.SUCCEEDED, result={"text": "hi"}, usage=usage, worker="w1"),
        Completion(classified.id, JobStatus.SUCCEEDED, result={"n": [1]}, classified_texts=1, worker="w1"),
        Completion(failed.id, JobStatus.FAILED, error={"code": "x", "message": "y"}, worker="w1"),
        Completion(others.id, JobStatus.SUCCEEDED, result={"stolen": True}, worker="w1"),
        Completion(queued.id, JobStatus.SUCCEEDED, result={"early": True}, worker="w1"),
    ]
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith(("UPDATE", "WITH")):
            statements.append(statement)

    with session_scope(database_url) as session:
        event.listen(session.get_bind(), "before_cursor_execute", count)
        try:
            ended = end_jobs(session, client, completions)
        finally:
            event.remove(session.get_bind(), "before_cursor_execute", count)

    assert [e is not None for e in ended] == [True, True, True, False, False]
    assert len(statements) == 1, statements  # the whole group: one statement
    rows = {j.id: load_job(database_url, j.id) for j in (generated, classified, failed, others, queued)}
    assert (rows[generated.id].result, rows[generated.id].usage) == ({"text": "hi"}, usage)
    assert (rows[classified.id].result, rows[classified.id].classified_texts) == ({"n": [1]}, 1)
    assert (rows[failed.id].status, rows[failed.id].error) == ("failed", {"code": "x", "message": "y"})
    assert rows[failed.id].result is None and rows[failed.id].usage is None
    assert all(rows[j].finished_at is not None for j in (generated.id, classified.id, failed.id))
    assert (rows[others.id].status, rows[others.id].result) == ("running", None)
    assert (rows[queued.id].status, rows[queued.id].result) == ("queued", None)


def test_a_batch_whose_columns_are_null_in_every_row_is_written(
    database_url: str, client: redis.Redis
) -> None:
    """Arrays of NULLs only (PostgreSQL's `unnest` form): no result, usage or texts in any outcome."""
    first, second = job_row(), job_row()
    _insert(database_url, first, second, status=JobStatus.RUNNING, worker="w1")
    error = {"code": "timeout", "message": "the job ran past its time limit"}
    with session_scope(database_url) as session:
        ended = end_jobs(
            session,
            client,
            [Completion(j.id, JobStatus.FAILED, error=error, worker="w1") for j in (first, second)],
        )
    assert all(e is not None for e in ended)
    for job in (first, second):
        row = load_job(database_url, job.id)
        assert (row.status, row.error, row.result, row.classified_texts) == ("failed", error, None, None)
        assert row.prompt_tokens is None and row.finished_at is not None
