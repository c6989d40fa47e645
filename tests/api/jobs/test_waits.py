"""Long polling at scale: `?wait` requests share one Redis subscription per API process, the health
endpoints stay up during a flood of them, a cap answers the excess at once, and no announcement is
missed (not between the read and the wait, not across a lost subscription)."""

from __future__ import annotations

import asyncio
import time
from functools import partial

import httpx
import pytest
import redis

from api.jobs.reads import OwnedJob, read_jobs
from api.jobs.waits import JobEvents, JobReader, wait_for_job
from shared.db import repository
from shared.db.session import get_sessionmaker, session_scope
from shared.events import announce_terminal
from shared.schemas import JobOut, JobStatus
from tests.api.conftest import Serve
from tests.utils.factories import insert_job, job_payload
from tests.utils.metrics import parse_metrics, value

WAITERS = 600
HEALTH = ("/readyz", "/v1/queues", "/metrics")


def _finish(database_url: str, redis_url: str, job_id: str, *, announce: bool = True) -> None:
    """What a worker does: claim, finish, commit, then (unless told not to) announce."""
    with session_scope(database_url) as session:
        assert repository.claim(session, job_id, "test-worker")
    with session_scope(database_url) as session:
        assert repository.finish(session, job_id, JobStatus.SUCCEEDED, result={"label": "positive"})
    if announce:
        client = redis.Redis.from_url(redis_url)
        announce_terminal(client, job_id, "sentiment", JobStatus.SUCCEEDED.value)
        client.close()


def _redis_clients(redis_url: str, after_id: int = 0) -> list[dict[str, str]]:
    """The connections to this session's Redis database (CLIENT LIST, filtered by db index) opened after
    connection `after_id` (Redis numbers connections in order): those of the app under test, not what
    earlier tests of the session may still hold."""
    client = redis.Redis.from_url(redis_url)
    try:
        db = str(client.connection_pool.connection_kwargs.get("db", 0))
        return [c for c in client.client_list() if str(c.get("db")) == db and int(c["id"]) > after_id]
    finally:
        client.close()


def _last_client_id(redis_url: str) -> int:
    """The id of a connection opened now: every later one has a larger id."""
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.client_id())
    finally:
        client.close()


async def _until(predicate: object, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


async def _held(client: httpx.AsyncClient) -> float:
    return value(parse_metrics((await client.get("/metrics")).text), "textfleet_api_waits_held")


def test_hundreds_of_waiters_share_one_subscription_and_health_stays_up(
    serve: Serve, database_url: str, redis_url: str
) -> None:
    before = _last_client_id(redis_url)
    live = serve()

    async def flood() -> tuple[list[httpx.Response], list[int], list[dict[str, str]]]:
        limits = httpx.Limits(max_connections=WAITERS + 50, max_keepalive_connections=WAITERS + 50)
        async with httpx.AsyncClient(base_url=live.url, timeout=120, limits=limits) as client:
            job_id = (await client.post("/v1/jobs", json=job_payload("sentiment"))).json()["id"]
            waits = [
                asyncio.ensure_future(client.get(f"/v1/jobs/{job_id}", params={"wait": 60}))
                for _ in range(WAITERS)
            ]

            async def all_held() -> bool:
                return await _held(client) >= WAITERS

            await _until(all_held)
            clients = _redis_clients(redis_url, after_id=before)
            probes = [(await client.get(path)).status_code for _ in range(10) for path in HEALTH]
            await asyncio.to_thread(_finish, database_url, redis_url, job_id)
            return await asyncio.gather(*waits), probes, clients

    responses, probes, clients = asyncio.run(flood())

    assert probes == [200] * len(probes)
    assert [r.status_code for r in responses] == [200] * WAITERS
    assert {r.json()["status"] for r in responses} == {"succeeded"}
    assert {str(r.json()["result"]) for r in responses} == {"{'label': 'positive'}"}
    subscribers = [c for c in clients if int(c.get("psub", 0)) or int(c.get("sub", 0))]
    assert len(subscribers) == 1  # one subscription for the whole process
    assert len(clients) < 50  # not a connection per waiter


def test_waits_above_the_cap_answer_at_once_with_the_current_state(
    serve: Serve, database_url: str, redis_url: str
) -> None:
    live = serve(wait_max_waiters="3")

    async def scenario() -> tuple[list[httpx.Response], httpx.Response, float]:
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
            job_id = (await client.post("/v1/jobs", json=job_payload("sentiment"))).json()["id"]
            held = [
                asyncio.ensure_future(client.get(f"/v1/jobs/{job_id}", params={"wait": 60})) for _ in range(3)
            ]

            async def three_held() -> bool:
                return await _held(client) >= 3

            await _until(three_held)
            extra = await client.get(f"/v1/jobs/{job_id}", params={"wait": 60})  # would hold 60 s: times out
            metrics = parse_metrics((await client.get("/metrics")).text)
            await asyncio.to_thread(_finish, database_url, redis_url, job_id)
            return (
                await asyncio.gather(*held),
                extra,
                value(metrics, "textfleet_api_waits_answered_at_once_total"),
            )

    held, extra, answered_at_once = asyncio.run(scenario())
    assert extra.status_code == 200
    assert extra.json()["status"] == "queued"
    assert answered_at_once >= 1
    assert [r.json()["status"] for r in held] == ["succeeded"] * 3


@pytest.mark.usefixtures("clean")
def test_a_job_finished_between_the_read_and_the_wait_is_not_missed(
    database_url: str, redis_url: str
) -> None:
    job_id = insert_job(database_url)
    reads: list[str] = []

    def read_then_finish(ids: list[str]) -> dict[str, OwnedJob]:
        found = read_jobs(get_sessionmaker(database_url), ids)
        reads.append(found[job_id].job.status.value)
        if len(reads) == 1:  # the worst moment: right after the waiter's first read
            _finish(database_url, redis_url, job_id)
        return found

    async def scenario() -> JobOut:
        events = JobEvents(redis_url, max_waiters=10)
        await events.start()
        try:
            reader = JobReader(read_then_finish)  # type: ignore[arg-type]
            return await asyncio.wait_for(wait_for_job(events, reader, job_id, 60), 20)
        finally:
            await events.stop()

    job = asyncio.run(scenario())
    assert reads[0] == "queued"
    assert job.status == JobStatus.SUCCEEDED


@pytest.mark.usefixtures("clean")
def test_a_lost_subscription_is_renewed_and_its_waiters_re_read(database_url: str, redis_url: str) -> None:
    """Redis drops the subscriber while a job finishes (its announcement is lost with it): the waiter
    still answers with the finished job once the subscription is back, long before its deadline."""
    job_id = insert_job(database_url)

    async def scenario() -> JobOut:
        events = JobEvents(redis_url, max_waiters=10)
        await events.start()
        try:
            assert events.live
            reader = JobReader(partial(read_jobs, get_sessionmaker(database_url)))
            waiter = asyncio.ensure_future(wait_for_job(events, reader, job_id, 60))
            while events.waiting < 1:
                await asyncio.sleep(0.05)
            await asyncio.to_thread(_finish, database_url, redis_url, job_id, announce=False)
            admin = redis.Redis.from_url(redis_url)
            killed = [c for c in _redis_clients(redis_url) if int(c.get("psub", 0))]
            for c in killed:
                admin.client_kill_filter(_id=c["id"])
            admin.close()
            assert killed
            return await asyncio.wait_for(waiter, 20)
        finally:
            await events.stop()

    assert asyncio.run(scenario()).status == JobStatus.SUCCEEDED


@pytest.mark.usefixtures("clean")
def test_a_wait_on_another_tenants_job_is_not_found_at_once(database_url: str, redis_url: str) -> None:
    """The coalesced read that serves every tenant's waits answers each with its own tenant's view: a
    wait on another tenant's queued job ends at once, not found, like a wait on a missing id."""
    job_id = insert_job(database_url, tenant="owner")

    async def scenario() -> tuple[JobOut, list[BaseException], float]:
        events = JobEvents(redis_url, max_waiters=10)
        await events.start()
        try:
            reader = JobReader(partial(read_jobs, get_sessionmaker(database_url)))
            started = time.monotonic()
            refused = await asyncio.gather(
                wait_for_job(events, reader, job_id, 60, "intruder"),
                wait_for_job(events, reader, "0" * 26, 60, "intruder"),
                return_exceptions=True,
            )
            elapsed = time.monotonic() - started
            own = await wait_for_job(events, reader, job_id, 0.2, "owner")
            return own, [r for r in refused if isinstance(r, BaseException)], elapsed
        finally:
            await events.stop()

    own, refused, elapsed = asyncio.run(scenario())
    assert own.id == job_id and own.status == JobStatus.QUEUED
    assert [type(e).__name__ for e in refused] == ["JobNotFoundError"] * 2
    assert str(refused[0]) == str(refused[1])
    assert elapsed < 10  # not the 60 s a wait on a job it could see would hold
