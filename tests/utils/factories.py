"""Factories for job payloads and rows."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from shared.constants import DEFAULT_TENANT
from shared.db import repository, session_scope
from shared.db.models import Job, utcnow
from shared.schemas import JobStatus
from workers.store import Claim


def job_payload(task: str = "sentiment", **overrides: Any) -> dict[str, Any]:
    """A valid `POST /v1/jobs` body for `task`."""
    inputs: dict[str, dict[str, Any]] = {
        "generate": {"prompt": "Say hello."},
        "summarize": {"text": "The quick brown fox jumps over the lazy dog. " * 4},
        "moderate": {"text": "I love sunny days."},
        "risk": {"text": "Please send your bank password to claim the prize."},
        "sentiment": {"text": "This is wonderful!"},
        "extract": {"text": "Ada Lovelace met Charles Babbage in London in 1833."},
        "entities": {"text": "Ada Lovelace met Charles Babbage in London on 5 June 1833."},
    }
    body: dict[str, Any] = {"task": task, "input": inputs[task]}
    body.update(overrides)
    return body


def job_row(task: str = "sentiment", **overrides: Any) -> Job:
    """A queued Job row (not yet added to a session)."""
    fields: dict[str, Any] = {
        "task": task,
        "input_": overrides["input_"] if "input_" in overrides else job_payload(task)["input"],
        "params": {},
        "metadata": {},
        "priority": 5,
    }
    fields.update(overrides)
    return new_job(**fields)


def new_job(
    *,
    task: str,
    input_: dict[str, Any],
    params: dict[str, Any],
    metadata: dict[str, Any],
    priority: int,
    job_id: str | None = None,
    created_at: datetime | None = None,
    tenant: str = DEFAULT_TENANT,
) -> Job:
    """A `queued` Job row of `tenant`, not yet added to any session (tests set any other state on it
    directly)."""
    return Job(
        id=job_id or repository.new_job_id(),
        tenant_id=tenant,
        task=task,
        status=JobStatus.QUEUED.value,
        input=input_,
        params=params,
        meta=metadata,
        priority=priority,
        attempts=0,
        created_at=created_at or utcnow(),
    )


def add_jobs(session: Session, jobs: Iterable[Job]) -> None:
    """Add job rows built by these factories to `session` (written on its commit)."""
    session.add_all(list(jobs))


def webhook_job_row(
    url: str, events: list[str] | None = None, task: str = "sentiment", **overrides: Any
) -> Job:
    """A queued Job row with a webhook (default events: completed), not yet added to a session."""
    job = job_row(task, **overrides)
    job.webhook = url
    job.webhook_events = events if events is not None else ["completed"]
    return job


def insert_job(database_url: str, task: str = "sentiment", **overrides: Any) -> str:
    """Insert a queued job row (see `job_row`) and return its id."""
    job = job_row(task, **overrides)
    with session_scope(database_url) as session:
        add_jobs(session, [job])
    return job.id


def load_job(database_url: str, job_id: str) -> Job:
    """The job row with `job_id` (it must exist)."""
    with session_scope(database_url) as session:
        job = repository.get(session, job_id)
        assert job is not None, job_id
        return job


def claim_for(job_id: str, *, expired: bool = False, task: str = "moderate") -> Claim:
    """A worker's claim of a job (`workers.store.Claim`) without a database row."""
    payload = job_payload(task)
    return Claim(job_id, payload["input"], payload.get("params", {}), 1, utcnow(), expired=expired)
