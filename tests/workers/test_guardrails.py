"""Guardrails on generation (workers/guardrails.py): the rules with a scripted moderator, then the fleet
moderator against real PostgreSQL/SQLite and Redis, with a thread standing in for the classify worker."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import select, update

from shared.db import session_scope
from shared.db.models import Job
from shared.errors import ContentFlaggedError, GuardrailUnavailableError
from shared.queueing import make_celery
from shared.schemas import GenerateInput, GenerateParams
from shared.settings import Settings
from tests.utils.factories import insert_job
from workers.guardrails import fleet_moderator, guard_input, guard_output
from workers.runtime import WorkerRuntime

pytestmark = pytest.mark.timeout(60)

CLEAN = {"flagged": False, "categories": {"harassment": False}, "category_scores": {"harassment": 0.01}}
FLAGGED = {
    "flagged": True,
    "categories": {"harassment": True, "hate": True, "sexual": False},
    "category_scores": {"harassment": 0.97, "hate": 0.91, "sexual": 0.02},
}


class Scripted:
    def __init__(self, verdict: dict[str, Any]) -> None:
        self.verdict = verdict
        self.seen: list[tuple[str, str]] = []

    def __call__(self, text: str, which: str) -> dict[str, Any]:
        self.seen.append((text, which))
        return self.verdict


def test_a_flagged_prompt_fails_before_generation_naming_the_categories() -> None:
    moderator = Scripted(FLAGGED)
    with pytest.raises(ContentFlaggedError, match="harassment, hate") as caught:
        guard_input(GenerateInput(prompt="bad words"), GenerateParams(moderate_input=True), moderator)
    assert caught.value.code == "content_flagged"
    assert moderator.seen == [("bad words", "input")]


def test_chat_messages_are_moderated_together_and_off_means_no_call() -> None:
    moderator = Scripted(CLEAN)
    chat = GenerateInput(
        messages=[{"role": "system", "content": "be kind"}, {"role": "user", "content": "hi"}]
    )
    guard_input(chat, GenerateParams(moderate_input=True), moderator)
    assert moderator.seen == [("be kind\nhi", "input")]
    guard_input(chat, GenerateParams(), moderator)
    assert guard_output("text", GenerateParams(), moderator) is None
    assert len(moderator.seen) == 1


def test_output_moderation_is_attached_or_blocks() -> None:
    assert guard_output("fine text", GenerateParams(moderate_output=True), Scripted(FLAGGED)) == FLAGGED
    assert guard_output("fine text", GenerateParams(moderate_output="block"), Scripted(CLEAN)) == CLEAN
    with pytest.raises(ContentFlaggedError, match="output was flagged"):
        guard_output("nasty text", GenerateParams(moderate_output="block"), Scripted(FLAGGED))


def _runtime(database_url: str, redis_url: str) -> WorkerRuntime:
    settings = Settings(database_url=database_url, redis_url=redis_url)
    return cast(WorkerRuntime, SimpleNamespace(settings=settings, celery=make_celery(settings)))


def _classify_worker(database_url: str, result: dict[str, Any] | None, stop: threading.Event) -> None:
    """Ends every queued child moderation job: `succeeded` with `result`, or `failed` if None."""
    while not stop.is_set():
        with session_scope(database_url) as session:
            children = session.scalars(
                select(Job.id).where(Job.task == "moderate", Job.status == "queued")
            ).all()
            for child in children:
                values: dict[str, Any] = (
                    {"status": "succeeded", "result": result}
                    if result is not None
                    else {"status": "failed", "error": {"code": "model_error", "message": "boom"}}
                )
                session.execute(update(Job).where(Job.id == child).values(**values))
        time.sleep(0.02)


@pytest.mark.parametrize(("result", "outcome"), [(FLAGGED, "verdict"), (None, "unavailable")])
def test_the_fleet_moderator_runs_a_child_job_and_waits_for_it(
    database_url: str, clean_redis_url: str, result: dict[str, Any] | None, outcome: str
) -> None:
    stop = threading.Event()
    worker = threading.Thread(target=_classify_worker, args=(database_url, result, stop), daemon=True)
    worker.start()
    try:
        moderate = fleet_moderator(_runtime(database_url, clean_redis_url), "01PARENTJOB00000000000000A", 20)
        if outcome == "verdict":
            assert moderate("some text", "input") == FLAGGED
        else:
            with pytest.raises(GuardrailUnavailableError, match="ended failed"):
                moderate("some text", "input")
    finally:
        stop.set()
        worker.join(timeout=10)
    with session_scope(database_url) as session:
        child = session.scalars(select(Job).where(Job.meta["guardrail_of"].as_string() != "")).all()
        mine = [job for job in child if job.meta.get("guardrail_of") == "01PARENTJOB00000000000000A"]
    assert mine, "the child moderation job is recorded"
    assert mine[-1].input == {"text": "some text"} and mine[-1].priority == 9


def test_no_verdict_in_time_is_retryable(database_url: str, clean_redis_url: str) -> None:
    moderate = fleet_moderator(_runtime(database_url, clean_redis_url), "01PARENTJOB00000000000000B", 0.3)
    with pytest.raises(GuardrailUnavailableError, match="no output moderation within"):
        moderate("nobody classifies this", "output")


def test_the_child_moderation_job_is_in_its_parents_tenant(database_url: str, clean_redis_url: str) -> None:
    """The child holds the parent's text: it belongs to the parent's tenant (whose reads may see it),
    never to the default tenant's."""
    parent = insert_job(database_url, "generate", tenant="guarded-tenant")
    stop = threading.Event()
    worker = threading.Thread(target=_classify_worker, args=(database_url, CLEAN, stop), daemon=True)
    worker.start()
    try:
        assert fleet_moderator(_runtime(database_url, clean_redis_url), parent, 20)("text", "input") == CLEAN
    finally:
        stop.set()
        worker.join(timeout=10)
    with session_scope(database_url) as session:
        tenants = session.scalars(
            select(Job.tenant_id).where(Job.meta["guardrail_of"].as_string() == parent)
        ).all()
    assert tenants == ["guarded-tenant"]
