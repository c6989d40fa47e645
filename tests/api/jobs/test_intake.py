"""The group commit of single submissions isolates a failed group: when the database refuses one
member (a value validation let through: simulated by building the model without validation), the
others are stored one by one and succeed, and only the member at fault fails, with a 4xx error.
Real database (PostgreSQL and SQLite) and real Redis; the log of the whole episode holds no payload."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Sequence
from typing import Any

import pytest

from api.jobs.intake import IntakeBatcher
from api.jobs.service import JobService
from shared.constants import TaskName
from shared.db.session import get_sessionmaker
from shared.errors import InvalidInputError, QueueUnavailableError
from shared.logging import configure_logging
from shared.queueing import make_celery
from shared.schemas import JOB_CREATE_MODELS, ClassifyParams, JobCreate, JobOut, TextInput
from shared.settings import get_settings
from tests.api.conftest import Broker, Rows

SentimentJobCreate = JOB_CREATE_MODELS["sentiment"]

MARKER = "MRK" + secrets.token_hex(8)


def _unvalidated(text: str, metadata: dict[str, Any]) -> JobCreate:
    """A job body as if validation had let it through."""
    return SentimentJobCreate.model_construct(
        task=TaskName.SENTIMENT,
        input=TextInput.model_construct(text=text),
        params=ClassifyParams(),
        metadata=metadata,
        priority=5,
        webhook=None,
        webhook_events=None,
    )


def _good(i: int) -> JobCreate:
    return SentimentJobCreate.model_validate(
        {"task": "sentiment", "input": {"text": f"{MARKER} neighbour {i}"}, "metadata": {"n": i}}
    )


@pytest.mark.usefixtures("clean")
def test_a_refused_member_fails_alone_and_its_neighbours_are_stored(
    database_url: str, rows: Rows, broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = get_settings()
    configure_logging(settings.model_copy(update={"log_format": "json"}), process="api")
    celery = make_celery(settings)
    jobs = JobService(settings, celery, get_sessionmaker(settings.database_url))
    bad = [_unvalidated(f"{MARKER} unserializable", {"k": {MARKER}})]  # a set is not JSON
    if database_url.startswith("postgresql"):
        bad.append(_unvalidated(f"{MARKER}\x00 NUL", {}))  # PostgreSQL refuses NUL in JSON
        bad.append(_unvalidated("surrogate", {"k": f"{MARKER}\udfff"}))
    good = [_good(i) for i in range(40)]
    bodies = good[:20] + bad + good[20:]
    calls: list[int] = []

    def store(batch: Sequence[JobCreate], tenants: Sequence[str]) -> list[JobOut]:
        calls.append(len(batch))
        return jobs.create(list(batch), log_each=True, tenant=tenants)

    async def submit_all() -> list[JobOut | BaseException]:
        batcher = IntakeBatcher(store)
        return await asyncio.gather(*(batcher.submit(body) for body in bodies), return_exceptions=True)

    try:
        outcomes = asyncio.run(submit_all())
    finally:
        celery.close()

    assert calls[0] > 1 and len(calls) == 1 + calls[0]  # one group, then each member alone
    stored: set[str] = set()
    for body, outcome in zip(bodies, outcomes, strict=True):
        if any(body is b for b in bad):
            assert isinstance(outcome, InvalidInputError), outcome
            assert outcome.code == "unstorable_input"
            assert MARKER not in outcome.message
        else:
            assert isinstance(outcome, JobOut), outcome
            stored.add(outcome.id)
    assert len(stored) == 40
    assert rows.count() == 40
    assert set(broker.jobs()) == stored
    log = capsys.readouterr().err
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(line["event"] == "intake.group_failed" for line in lines)
    assert sum(line["event"] == "job.created" for line in lines) == 40
    assert MARKER not in log


@pytest.mark.usefixtures("clean")
def test_in_an_outage_every_member_gets_the_503_without_a_try_each(rows: Rows) -> None:
    settings = get_settings()
    celery = make_celery(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))  # nobody there
    jobs = JobService(settings, celery, get_sessionmaker(settings.database_url))
    calls: list[int] = []

    def store(batch: Sequence[JobCreate], tenants: Sequence[str]) -> list[JobOut]:
        calls.append(len(batch))
        return jobs.create(list(batch), tenant=tenants)

    async def submit_all() -> list[JobOut | BaseException]:
        batcher = IntakeBatcher(store)
        return await asyncio.gather(*(batcher.submit(_good(i)) for i in range(10)), return_exceptions=True)

    try:
        outcomes = asyncio.run(submit_all())
    finally:
        celery.close()
    assert calls == [10, 1]  # the group, then one member alone: the outage is confirmed
    assert all(isinstance(o, QueueUnavailableError) for o in outcomes), outcomes
    assert rows.count() == 0
