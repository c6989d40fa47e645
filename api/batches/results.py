"""A finished request as a line of a batch's output or error file (OpenAI's batch result shape).

Success goes to the output file: `{"id", "custom_id", "response": {"status_code": 200, "request_id",
"body"}, "error": null}`, `body` being exactly what the synchronous endpoint answers (built by the same
functions, `api.openai`); for `/v1/jobs`, the job as `GET /v1/jobs/{id}` shows it. A request whose job
failed goes to the error file with the status and OpenAI error body the synchronous endpoint would have
answered; one the batch canceled or expired before it ran has `response: null` and `error: {"code":
"batch_cancelled" | "batch_expired", "message"}`.
"""

from __future__ import annotations

from typing import Any

from api.openai.errors import failure_body, job_error
from api.openai.moderation import moderation_response
from api.openai.translate import chat_response, completion_response
from shared.results import JobStatus
from shared.schemas import JobOut

__all__ = ["is_output", "result_line"]


def is_output(jobs: list[JobOut]) -> bool:
    """Whether a finished request's line belongs in the output file (else in the error file)."""
    return all(job.status is JobStatus.SUCCEEDED for job in jobs)


def response_body(endpoint: str, jobs: list[JobOut], model: str | None) -> dict[str, Any]:
    """What the synchronous endpoint answers for these succeeded jobs."""
    if endpoint == "/v1/moderations":
        return moderation_response(jobs, model).model_dump(mode="json")
    if endpoint == "/v1/chat/completions":
        return chat_response(jobs[0], model or "").model_dump(mode="json")
    if endpoint == "/v1/completions":
        return completion_response(jobs, model or "").model_dump(mode="json")
    return jobs[0].model_dump(mode="json")


def _unrun(batch_status: str, job: JobOut) -> dict[str, str] | None:
    """The error of a request the batch stopped before it ran (None for one that ran and failed)."""
    if job.status not in (JobStatus.CANCELED, JobStatus.EXPIRED) or job.started_at is not None:
        return None
    code = {"cancelling": "batch_cancelled", "cancelled": "batch_cancelled", "expired": "batch_expired"}
    if batch_status not in code:
        return None
    return {"code": code[batch_status], "message": f"the batch was {batch_status} before this request ran"}


def result_line(
    endpoint: str, batch_status: str, custom_id: str, model: str | None, jobs: list[JobOut]
) -> dict[str, Any]:
    """The output- or error-file line of a request whose jobs are all terminal."""
    first = jobs[0]
    line: dict[str, Any] = {
        "id": f"batch_req_{first.id}",
        "custom_id": custom_id,
        "response": None,
        "error": None,
    }
    if is_output(jobs):
        body = response_body(endpoint, jobs, model)
        line["response"] = {"status_code": 200, "request_id": first.id, "body": body}
        return line
    failed = next(job for job in jobs if job.status is not JobStatus.SUCCEEDED)
    unrun = _unrun(batch_status, failed)
    if unrun is not None:
        line["error"] = unrun
        return line
    body = failure_body(job_error(failed))
    status = 500 if body["error"]["type"] == "server_error" else 400
    line["response"] = {"status_code": status, "request_id": failed.id, "body": body}
    return line
