"""Guardrails on generation: moderation of the prompt before, and of the output after, a generation.

The moderation runs on the fleet's own classify path, batched like any classification: the
generation worker records a child `moderate` job (priority 9, `metadata.guardrail_of` = the parent
job's id; in the parent's tenant, as it holds that tenant's text), sends it to the classify queue,
and waits for its result in the database. So a generation worker needs no classifier of its own, and
the verdict is recorded like any job's. If no verdict comes back in time (no classify worker
running, say) the parent is retried later rather than generated unchecked (`guardrail_unavailable`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog

from shared.constants import GUARDRAIL_WAIT_S, PRIORITY_MAX, TaskName
from shared.db import job_queries, repository, session_scope
from shared.db.models import Job, utcnow
from shared.errors import ContentFlaggedError, GuardrailUnavailableError
from shared.queueing import send_job
from shared.schemas import GenerateInput, GenerateParams, JobStatus
from workers.runtime import WorkerRuntime

__all__ = ["GUARDRAIL_WAIT_S", "Moderator", "fleet_moderator", "guard_input", "guard_output"]

log = structlog.get_logger(__name__)

_MODERATE = TaskName("moderate")

#: Polling interval of the database while waiting (doubling from the first value up to the second).
_POLL_S = (0.02, 0.25)

#: Moderates one text: (text, which guardrail) -> a `ModerationResult` as a dict.
Moderator = Callable[[str, str], dict[str, Any]]


def fleet_moderator(rt: WorkerRuntime, parent_id: str, timeout_s: float | None) -> Moderator:
    """A moderator that runs each text as a child `moderate` job on the classify queue."""

    def moderate(text: str, which: str) -> dict[str, Any]:
        with session_scope(rt.settings.database_url) as session:
            row = repository.new_job_row(
                task=_MODERATE.value,
                input_={"text": text},
                params={},
                metadata={"guardrail_of": parent_id, "guardrail": which},
                priority=PRIORITY_MAX,
                created_at=utcnow(),
                tenant=job_queries.tenant_of(session, parent_id),
            )
            repository.insert_job_rows(session, [row])
        try:
            send_job(rt.celery, row["id"], _MODERATE, PRIORITY_MAX)
        except Exception as exc:  # the sweeper re-sends it; meanwhile the parent is retried later
            raise GuardrailUnavailableError(f"could not enqueue the {which} moderation: {exc}") from exc
        return _wait_result(rt.settings.database_url, row["id"], which, timeout_s or GUARDRAIL_WAIT_S)

    return moderate


def _wait_result(database_url: str, job_id: str, which: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    pause = _POLL_S[0]
    while True:
        with session_scope(database_url) as session:
            job = session.get(Job, job_id)
            status, result = (job.status, job.result) if job is not None else (None, None)
        if status == JobStatus.SUCCEEDED.value and result is not None:
            return result
        if status not in (JobStatus.QUEUED.value, JobStatus.RUNNING.value):
            raise GuardrailUnavailableError(f"the {which} moderation job {job_id} ended {status}")
        if time.monotonic() > deadline:
            raise GuardrailUnavailableError(f"no {which} moderation within {timeout_s:.0f}s")
        time.sleep(pause)
        pause = min(pause * 2, _POLL_S[1])


def _flagged(moderation: dict[str, Any]) -> list[str]:
    return sorted(name for name, hit in moderation.get("categories", {}).items() if hit)


def _prompt_text(input_: GenerateInput) -> str:
    if input_.prompt is not None:
        return input_.prompt
    return "\n".join(m.content for m in input_.messages or [])


def guard_input(input_: GenerateInput, params: GenerateParams, moderate: Moderator) -> None:
    """With `params.moderate_input`: fail a flagged prompt before any generation."""
    if not params.moderate_input:
        return
    verdict = moderate(_prompt_text(input_), "input")
    if verdict.get("flagged"):
        categories = _flagged(verdict)
        log.info("guardrail.input_flagged", categories=categories)
        raise ContentFlaggedError(f"the prompt was flagged by moderation: {', '.join(categories)}")


def guard_output(text: str, params: GenerateParams, moderate: Moderator) -> dict[str, Any] | None:
    """With `params.moderate_output`: the output's moderation (to attach to the result); with
    `"block"`, a flagged output fails the job instead."""
    if not params.moderate_output:
        return None
    verdict = moderate(text, "output")
    if params.moderate_output == "block" and verdict.get("flagged"):
        categories = _flagged(verdict)
        log.info("guardrail.output_blocked", categories=categories)
        raise ContentFlaggedError(f"the output was flagged by moderation: {', '.join(categories)}")
    return verdict
