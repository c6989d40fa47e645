"""A finished request as a line of a batch's output or error file (OpenAI's batch result shape).

Success goes to the output file: `{"id", "custom_id", "response": {"status_code": 200, "request_id",
"body"}, "error": null}`, `body` being what the synchronous endpoint answers (a `chat.completion`,
`text_completion` or moderation object; for `/v1/jobs`, the job). A failed job goes to the error file
with its status code and an OpenAI error body; a request the batch canceled or expired before it ran
has `response: null` and `error: {"code": "batch_cancelled" | "batch_expired", "message"}`.
"""

from __future__ import annotations

from typing import Any

from shared.db import repository
from shared.db.models import Job
from shared.results import JobStatus

__all__ = ["is_output", "result_line"]

#: Job error codes that are the request's fault (a 400 in the line), not the server's (a 500).
_CLIENT_ERRORS = frozenset({"invalid_request", "validation_error", "content_flagged", "unstorable_input"})


def is_output(job: Job) -> bool:
    """Whether the job's line belongs in the output file (else in the error file)."""
    return job.status == JobStatus.SUCCEEDED.value


def _usage(job: Job) -> dict[str, int]:
    prompt, completion = job.prompt_tokens or 0, job.completion_tokens or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _created(job: Job) -> int:
    return int((job.finished_at or job.created_at).timestamp())


def _finish_reason(result: dict[str, Any]) -> str:
    reason = str(result.get("finish_reason") or "stop")
    return reason if reason in {"stop", "length"} else "stop"


def response_body(endpoint: str, job: Job, model: str | None) -> dict[str, Any]:
    """What the synchronous endpoint would have answered for this succeeded job."""
    result = job.result or {}
    if endpoint == "/v1/moderations":
        categories: dict[str, bool] = result.get("categories", {})
        return {
            "id": f"modr-{job.id}",
            "model": model,
            "results": [
                {
                    "flagged": result.get("flagged", False),
                    "categories": categories,
                    "category_scores": result.get("category_scores", {}),
                    "category_applied_input_types": {name: ["text"] for name in categories},
                }
            ],
        }
    if endpoint == "/v1/chat/completions":
        return {
            "id": f"chatcmpl-{job.id}",
            "object": "chat.completion",
            "created": _created(job),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.get("text", ""), "refusal": None},
                    "logprobs": None,
                    "finish_reason": _finish_reason(result),
                }
            ],
            "usage": _usage(job),
        }
    if endpoint == "/v1/completions":
        return {
            "id": f"cmpl-{job.id}",
            "object": "text_completion",
            "created": _created(job),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "text": result.get("text", ""),
                    "logprobs": None,
                    "finish_reason": _finish_reason(result),
                }
            ],
            "usage": _usage(job),
        }
    return repository.to_out(job).model_dump(mode="json")


def result_line(
    endpoint: str, batch_status: str, custom_id: str, model: str | None, job: Job
) -> dict[str, Any]:
    """The output- or error-file line of a terminal job."""
    line: dict[str, Any] = {
        "id": f"batch_req_{job.id}",
        "custom_id": custom_id,
        "response": None,
        "error": None,
    }
    if job.status == JobStatus.SUCCEEDED.value:
        line["response"] = {
            "status_code": 200,
            "request_id": job.id,
            "body": response_body(endpoint, job, model),
        }
    elif job.status == JobStatus.FAILED.value:
        error = job.error or {"code": "server_error", "message": "the job failed"}
        client_fault = error.get("code") in _CLIENT_ERRORS
        line["response"] = {
            "status_code": 400 if client_fault else 500,
            "request_id": job.id,
            "body": {
                "error": {
                    "message": error.get("message", ""),
                    "type": "invalid_request_error" if client_fault else "server_error",
                    "param": error.get("field"),
                    "code": error.get("code"),
                }
            },
        }
    else:  # canceled or expired before it ran (or while it ran)
        code = {
            "cancelled": "batch_cancelled",
            "cancelling": "batch_cancelled",
            "expired": "batch_expired",
        }.get(batch_status)
        if code is None:
            code = "request_expired" if job.status == JobStatus.EXPIRED.value else "request_cancelled"
        line["error"] = {"code": code, "message": f"the request was not completed ({job.status})"}
    return line
