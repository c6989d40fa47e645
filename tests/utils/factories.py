"""Factories for job payloads and rows."""

from __future__ import annotations

from typing import Any

from shared.db import repository, session_scope
from shared.db.models import Job


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
    return repository.new_job(**fields)


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
        repository.insert_jobs(session, [job])
    return job.id


def load_job(database_url: str, job_id: str) -> Job:
    """The job row with `job_id` (it must exist)."""
    with session_scope(database_url) as session:
        job = repository.get(session, job_id)
        assert job is not None, job_id
        return job
