"""Server-sent events for `"stream": true`, in OpenAI's chunk format, ending with `data: [DONE]`.

A stream sends its opening chunks at once (chat: the assistant role), then, while its jobs run, a
chunk with what each text update (`api.openai.updates`: the worker's text so far) adds, and an SSE
comment (`: keep-alive`) after `STREAM_KEEPALIVE_S` of silence. When the jobs end, the recorded results close
it: per choice, what the result adds to the text already sent and the finish reason (completions: one
chunk with both), with `stream_options.include_usage` a chunk with `usage` and no choices, then
`data: [DONE]`. Updates are best effort, the results are the truth: the pieces always add up to the
recorded text. A job that fails sends `data: {"error": {...}}` (the `openai` client raises it as an
`APIError`), as does one whose recorded text does not start with what was sent (it ran again after a
worker failure and generated anew); then `data: [DONE]`. A client that disconnects cancels its jobs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import structlog
from fastapi.responses import StreamingResponse

from api.openai.errors import JobFailedError, error_body, failure_body, job_error
from api.openai.service import OpenAIService
from api.openai.translate import created, usage
from shared.constants import STREAM_KEEPALIVE_S, STREAM_POLL_S
from shared.results import JobStatus
from shared.schemas import JobCreate, JobOut

__all__ = [
    "STREAM_KEEPALIVE_S",
    "ChatFormat",
    "CompletionFormat",
    "StreamFormat",
    "event_stream",
    "final_chunks",
]

log = structlog.get_logger(__name__)

_DONE = b"data: [DONE]\n\n"
_KEEPALIVE = b": keep-alive\n\n"


def _event(data: Any) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


class StreamFormat:
    """How one endpoint writes its chunks; `jobs` are the request's jobs, one per choice, in order."""

    def __init__(self, jobs: list[JobOut], model: str, include_usage: bool) -> None:
        self.jobs = jobs
        self.model = model
        self.include_usage = include_usage

    def opening(self) -> list[dict[str, Any]]:
        """Chunks sent before the jobs run."""
        return []

    def delta(self, index: int, text: str) -> dict[str, Any]:
        """A chunk with more text of choice `index`."""
        raise NotImplementedError

    def ending(self, index: int, job: JobOut, rest: str) -> list[dict[str, Any]]:
        """The last chunks of choice `index`: the text not streamed yet (`rest`), the finish reason."""
        raise NotImplementedError

    def usage(self, jobs: list[JobOut]) -> dict[str, Any]:
        """The chunk with the usage of all the jobs, and no choices."""
        return {**self._head(), "choices": [], "usage": usage(jobs).model_dump()}

    def _head(self) -> dict[str, Any]:
        raise NotImplementedError


class ChatFormat(StreamFormat):
    """`chat.completion.chunk`s: the role first, then content deltas, then the finish reason."""

    def _head(self) -> dict[str, Any]:
        job = self.jobs[0]
        head: dict[str, Any] = {
            "id": f"chatcmpl-{job.id}",
            "object": "chat.completion.chunk",
            "created": created(job),
            "model": self.model,
            "system_fingerprint": None,
        }
        if self.include_usage:
            head["usage"] = None
        return head

    def _chunk(self, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**self._head(), "choices": [choice]}

    def opening(self) -> list[dict[str, Any]]:
        return [self._chunk({"role": "assistant", "content": ""}, None)]

    def delta(self, index: int, text: str) -> dict[str, Any]:
        return self._chunk({"content": text}, None)

    def ending(self, index: int, job: JobOut, rest: str) -> list[dict[str, Any]]:
        assert job.result is not None
        chunks = [self._chunk({"content": rest}, None)] if rest else []
        return [*chunks, self._chunk({}, job.result["finish_reason"])]


class CompletionFormat(StreamFormat):
    """`text_completion` chunks: text deltas per choice, each choice's last with its finish reason."""

    def _head(self) -> dict[str, Any]:
        job = self.jobs[0]
        head: dict[str, Any] = {
            "id": f"cmpl-{job.id}",
            "object": "text_completion",
            "created": created(job),
            "model": self.model,
        }
        if self.include_usage:
            head["usage"] = None
        return head

    def _chunk(self, index: int, text: str, finish: str | None) -> dict[str, Any]:
        return {
            **self._head(),
            "choices": [{"index": index, "text": text, "logprobs": None, "finish_reason": finish}],
        }

    def delta(self, index: int, text: str) -> dict[str, Any]:
        return self._chunk(index, text, None)

    def ending(self, index: int, job: JobOut, rest: str) -> list[dict[str, Any]]:
        assert job.result is not None
        return [self._chunk(index, rest, job.result["finish_reason"])]


def final_chunks(form: StreamFormat, jobs: list[JobOut], sent: list[str]) -> list[dict[str, Any]] | None:
    """The chunks that end a stream whose jobs succeeded, after `sent[i]` of choice i's text was
    streamed; None if a streamed text is not where its job's recorded text starts (a job retried after
    a worker failure generated anew)."""
    chunks: list[dict[str, Any]] = []
    for index, (job, streamed) in enumerate(zip(jobs, sent, strict=True)):
        assert job.result is not None
        text: str = job.result["text"]
        if not text.startswith(streamed):
            return None
        chunks.extend(form.ending(index, job, text[len(streamed) :]))
    if form.include_usage:
        chunks.append(form.usage(jobs))
    return chunks


async def _events(
    service: OpenAIService, submitted: list[tuple[JobOut, JobCreate]], form: StreamFormat
) -> AsyncIterator[bytes]:
    for chunk in form.opening():
        yield _event(chunk)
    ids = [job.id for job, _ in submitted]
    index_of = {job_id: index for index, job_id in enumerate(ids)}
    waiting = asyncio.ensure_future(
        asyncio.gather(*(service.finish(job.id, body) for job, body in submitted))
    )
    sent = [""] * len(ids)
    try:
        async with service.text_updates(ids) as updates:
            quiet_since = time.monotonic()
            while not waiting.done():
                update = await updates.next(timeout_s=STREAM_POLL_S)
                index = index_of.get(update[0], -1) if update is not None else -1
                if update is not None and index >= 0:
                    text = update[1]
                    if text.startswith(sent[index]) and len(text) > len(sent[index]):
                        yield _event(form.delta(index, text[len(sent[index]) :]))
                        sent[index] = text
                        quiet_since = time.monotonic()
                if time.monotonic() - quiet_since >= STREAM_KEEPALIVE_S:
                    yield _KEEPALIVE
                    quiet_since = time.monotonic()
        try:
            jobs: list[JobOut] = list(waiting.result())
        except Exception as exc:  # the database went away while we waited: say so, end the stream
            log.warning("openai.stream_wait_failed", job_ids=ids, error_type=type(exc).__name__)
            yield _event(
                error_body(503, "the job's state could not be read; retry", "database_unavailable", None)
            )
            yield _DONE
            return
        failed = next((job for job in jobs if job.status is not JobStatus.SUCCEEDED), None)
        ending = final_chunks(form, jobs, sent) if failed is None else None
        if failed is not None:
            yield _event(failure_body(job_error(failed)))
        elif ending is None:
            message = "a worker failed mid-generation and the job ran again; the text streamed so far is void"
            yield _event(failure_body(JobFailedError(message, code="stream_interrupted")))
        else:
            for chunk in ending:
                yield _event(chunk)
        yield _DONE
    finally:
        if not waiting.done():  # the client went away: `finish` cancels the jobs
            service.keep(waiting)
            waiting.cancel()


def event_stream(
    service: OpenAIService, submitted: list[tuple[JobOut, JobCreate]], form: StreamFormat
) -> StreamingResponse:
    """The SSE response of submitted jobs (see the module docstring)."""
    return StreamingResponse(
        _events(service, submitted, form),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
