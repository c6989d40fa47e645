"""Server-sent events for `"stream": true`, in OpenAI's chunk format, ending with `data: [DONE]`.

What is streamed, honestly: a job's result is recorded when the job ends, and workers publish no
partial output, so a stream sends the opening chunk (chat: the assistant role) at once, an SSE comment
(`: keep-alive`) every `KEEPALIVE_S` while the job runs, then the whole text in one content chunk, the
chunk with `finish_reason`, with `stream_options.include_usage` a last chunk with `usage` and no
choices, and `data: [DONE]`. A job that fails sends `data: {"error": {...}}` (the `openai` client raises
it as an `APIError`) and `data: [DONE]`. A client that disconnects cancels its jobs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from fastapi.responses import StreamingResponse

from api.openai.errors import failure_body, job_error
from api.openai.service import OpenAIService
from api.openai.translate import created, usage
from shared.results import JobStatus
from shared.schemas import JobCreate, JobOut

__all__ = ["KEEPALIVE_S", "chat_chunks", "chat_opening", "completion_chunks", "event_stream"]

#: Seconds between keep-alive comments while a streamed job runs (proxies drop idle connections).
KEEPALIVE_S = 15.0
_DONE = b"data: [DONE]\n\n"
_KEEPALIVE = b": keep-alive\n\n"


def _event(data: Any) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def _chat_chunk(
    job: JobOut, model: str, delta: dict[str, Any], finish: str | None, use: bool
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": f"chatcmpl-{job.id}",
        "object": "chat.completion.chunk",
        "created": created(job),
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if use:
        chunk["usage"] = None
    return chunk


def chat_opening(job: JobOut, model: str, include_usage: bool) -> dict[str, Any]:
    """The first chunk of a chat stream: the assistant's role, sent before the job runs."""
    return _chat_chunk(job, model, {"role": "assistant", "content": ""}, None, include_usage)


def chat_chunks(jobs: list[JobOut], model: str, include_usage: bool) -> list[dict[str, Any]]:
    """The chunks of a finished chat completion job: content, finish reason, (usage)."""
    job = jobs[0]
    assert job.result is not None
    chunks = [
        _chat_chunk(job, model, {"content": job.result["text"]}, None, include_usage),
        _chat_chunk(job, model, {}, job.result["finish_reason"], include_usage),
    ]
    if include_usage:
        last = _chat_chunk(job, model, {}, None, True)
        chunks.append({**last, "choices": [], "usage": usage(jobs).model_dump()})
    return chunks


def completion_chunks(jobs: list[JobOut], model: str, include_usage: bool) -> list[dict[str, Any]]:
    """The chunks of finished completion jobs (one choice per prompt): text, finish reason, (usage)."""
    head = {
        "id": f"cmpl-{jobs[0].id}",
        "object": "text_completion",
        "created": created(jobs[0]),
        "model": model,
    }
    if include_usage:
        head["usage"] = None
    chunks: list[dict[str, Any]] = []
    for index, job in enumerate(jobs):
        assert job.result is not None
        for text, finish in ((job.result["text"], None), ("", job.result["finish_reason"])):
            choice = {"index": index, "text": text, "logprobs": None, "finish_reason": finish}
            chunks.append({**head, "choices": [choice]})
    if include_usage:
        chunks.append({**head, "choices": [], "usage": usage(jobs).model_dump()})
    return chunks


async def _events(
    service: OpenAIService,
    submitted: list[tuple[JobOut, JobCreate]],
    opening: Sequence[dict[str, Any]],
    finish: Callable[[list[JobOut]], list[dict[str, Any]]],
) -> AsyncIterator[bytes]:
    for chunk in opening:
        yield _event(chunk)
    waiting = asyncio.ensure_future(
        asyncio.gather(*(service.finish(job.id, body) for job, body in submitted))
    )
    try:
        while not (await asyncio.wait({waiting}, timeout=KEEPALIVE_S))[0]:
            yield _KEEPALIVE
        jobs: list[JobOut] = list(waiting.result())
        failed = next((job for job in jobs if job.status is not JobStatus.SUCCEEDED), None)
        if failed is not None:
            yield _event(failure_body(job_error(failed)))
        else:
            for chunk in finish(jobs):
                yield _event(chunk)
        yield _DONE
    finally:
        if not waiting.done():  # the client went away: `finish` cancels the jobs
            service.keep(waiting)
            waiting.cancel()


def event_stream(
    service: OpenAIService,
    submitted: list[tuple[JobOut, JobCreate]],
    opening: Sequence[dict[str, Any]],
    finish: Callable[[list[JobOut]], list[dict[str, Any]]],
) -> StreamingResponse:
    """The SSE response of submitted jobs (see the module docstring)."""
    return StreamingResponse(
        _events(service, submitted, opening, finish),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
