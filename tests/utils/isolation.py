"""Helpers of the tenant isolation tests: objects of a tenant made through the API, rows the API does
not make itself (failed webhook deliveries), a stand-in worker for the interactive jobs, and the
comparison of two answers "modulo the id asked for"."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.db import repository
from shared.db.batch_models import Batch, FileObject
from shared.db.models import IdempotencyKey, Job, WebhookDelivery
from shared.db.session import session_scope
from shared.events import announce_terminal
from shared.schemas import JobStatus
from shared.webhooks import record_batch_event, record_event
from tests.utils.batches import jsonl, moderation_lines
from tests.utils.factories import add_jobs, job_payload, webhook_job_row
from tests.utils.tenancy import auth_headers

__all__ = [
    "HOOK_URL",
    "TenantObjects",
    "delivery_status",
    "idempotency_tenants",
    "interactive_worker",
    "make_objects",
    "same_answer",
    "tenant_of",
]

HOOK_URL = "https://hooks.example.com/textfleet"


@dataclass
class TenantObjects:
    """What one tenant made: ids by kind (see `make_objects`), and every job id it created."""

    tenant: str
    key: str
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return auth_headers(self.key)


def _failed_job_delivery(database_url: str, tenant: str) -> str:
    """A job of `tenant` with a webhook whose `completed` delivery failed (what a re-send needs)."""
    job = webhook_job_row(HOOK_URL, ["completed"], tenant=tenant)
    with session_scope(database_url) as session:
        add_jobs(session, [job])
        session.flush()
        row = record_event(session, job, "completed")
        assert row is not None
        _fail(session, row.id)
    return job.id


def _failed_batch_delivery(database_url: str, batch_id: str) -> None:
    with session_scope(database_url) as session:
        row = record_batch_event(session, batch_id, HOOK_URL, "completed")
        assert row is not None
        _fail(session, row.id)


def _fail(session: Session, delivery_id: str) -> None:
    session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(status="failed"))


def make_objects(client: httpx.Client, database_url: str, tenant: str, key: str) -> TenantObjects:
    """A tenant's objects, made through the API with its key (deliveries written to the database):
    `job` (queued), `file` (a batch input file), `file_del` (one to delete), `batch` (in progress, from
    `file`), `output_file` (its output file), `job_hook` and `batch_hook` (with a failed delivery),
    `job_erase` (a queued job, for a probe that erases one)."""
    made = TenantObjects(tenant, key)
    headers = made.headers
    for kind in ("job", "job_erase"):
        job = client.post("/v1/jobs", json=job_payload("sentiment"), headers=headers)
        assert job.status_code == 202, job.text
        made.ids[kind] = job.json()["id"]
    for kind in ("file", "file_del"):
        upload = client.post(
            "/v1/files",
            files={"file": ("in.jsonl", jsonl(list[dict[str, Any] | str](moderation_lines(2))))},
            data={"purpose": "batch"},
            headers=headers,
        )
        assert upload.status_code == 200, upload.text
        made.ids[kind] = upload.json()["id"]
    for kind in ("batch", "batch_hook"):
        batch = client.post(
            "/v1/batches",
            json={"input_file_id": made.ids["file"], "endpoint": "/v1/moderations"},
            headers=headers,
        )
        assert batch.status_code == 200 and batch.json()["status"] == "in_progress", batch.text
        made.ids[kind] = batch.json()["id"]
        made.ids.setdefault("output_file", batch.json()["output_file_id"])
    _failed_batch_delivery(database_url, made.ids["batch_hook"])
    made.ids["job_hook"] = _failed_job_delivery(database_url, tenant)
    return made


def same_answer(one: httpx.Response, one_id: str, two: httpx.Response, two_id: str) -> tuple[Any, Any]:
    """The two answers as (status, body with the id asked for replaced by `<id>`), to compare."""
    return (
        (one.status_code, one.text.replace(one_id, "<id>")),
        (two.status_code, two.text.replace(two_id, "<id>")),
    )


def tenant_of(database_url: str, kind: str, object_id: str) -> str | None:
    """The tenant column of a job, file or batch row (None if there is no such row)."""
    model: Any = {"job": Job, "file": FileObject, "batch": Batch}[kind]
    with session_scope(database_url) as session:
        return session.scalar(select(model.tenant_id).where(model.id == object_id))


def delivery_status(database_url: str, *, job_id: str | None = None, batch_id: str | None = None) -> str:
    with session_scope(database_url) as session:
        query = select(WebhookDelivery.status)
        query = query.where(
            WebhookDelivery.job_id == job_id if job_id else WebhookDelivery.batch_id == batch_id
        )
        status = session.scalar(query)
        assert status is not None
        return str(status)


def idempotency_tenants(database_url: str, key: str) -> list[str]:
    """The tenants that stored the Idempotency-Key `key`."""
    with session_scope(database_url) as session:
        return sorted(session.scalars(select(IdempotencyKey.tenant_id).where(IdempotencyKey.key == key)))


def _result(task: str) -> tuple[dict[str, Any], dict[str, int] | None]:
    if task == "generate":
        usage = {"prompt_tokens": 5, "completion_tokens": 2}
        return {"text": "Blue.", "finish_reason": "stop", "usage": usage}, usage
    return {"flagged": False, "categories": {"toxic": False}, "category_scores": {"toxic": 0.01}}, None


@contextmanager
def interactive_worker(database_url: str, redis_url: str, priority: int) -> Iterator[None]:
    """A stand-in worker for the block: every queued job at `priority` (the OpenAI endpoints') is
    claimed, finished and announced, as a worker would (jobs at other priorities are left alone)."""
    stop = threading.Event()

    def run() -> None:
        client = redis.Redis.from_url(redis_url)
        try:
            while not stop.wait(0.05):
                with session_scope(database_url) as session:
                    queued = session.execute(
                        select(Job.id, Job.task).where(
                            Job.status == JobStatus.QUEUED.value, Job.priority == priority
                        )
                    ).all()
                for job_id, task in queued:
                    result, usage = _result(task)
                    with session_scope(database_url) as session:
                        if repository.claim(session, job_id, "test-worker") is None:
                            continue
                    with session_scope(database_url) as session:
                        repository.finish(session, job_id, JobStatus.SUCCEEDED, result=result, usage=usage)
                    announce_terminal(client, job_id, task, JobStatus.SUCCEEDED.value)
        finally:
            client.close()

    thread = threading.Thread(target=run, name="interactive-worker", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)
