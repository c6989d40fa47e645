"""How the OpenAI endpoints use the fleet: submit jobs through the API's normal job path (stored, then
enqueued at high priority), wait for their end on the process's job announcements, cancel them.

Nothing here talks to a model: a chat completion is a `generate` job, a moderation one `moderate` job
per input, run by the same workers as every other job and recorded like any job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import structlog
from starlette.concurrency import run_in_threadpool

from api.jobs.service import JobService, cancel_job
from api.jobs.waits import JobWaiter
from api.openai.updates import TextUpdates, text_updates
from shared.constants import DEFAULT_TENANT, INTERACTIVE_GRACE_S, INTERACTIVE_TTL_S, PRIORITY_MAX
from shared.errors import ConflictError, JobNotFoundError
from shared.schemas import JobCreate, JobOut
from shared.settings import Settings

__all__ = ["INTERACTIVE_PRIORITY", "INTERACTIVE_TTL_S", "OpenAIService"]

log = structlog.get_logger(__name__)

#: Priority of the jobs of these endpoints: above every default, so interactive requests overtake
#: queued bulk work (batches) on the same workers.
INTERACTIVE_PRIORITY = PRIORITY_MAX


class OpenAIService:
    """Built once per app in `api.app._start_services`, held on `app.state.openai`; creates, waits for
    and cancels jobs through the jobs feature's own services."""

    def __init__(self, settings: Settings, jobs: JobService, waiter: JobWaiter) -> None:
        self.settings = settings
        self._jobs = jobs
        self._waiter = waiter
        self.created = int(time.time())
        self._kept: set[asyncio.Future[Any]] = set()  # the loop keeps only weak references

    def keep(self, future: asyncio.Future[Any]) -> None:
        """Hold a reference to `future` until it is done (work left running for a gone client)."""
        self._kept.add(future)
        future.add_done_callback(self._kept.discard)

    # --- Names ---------------------------------------------------------------------------------

    @property
    def generation_model(self) -> str:
        """The id clients name the fleet's generation model by (`GET /v1/models`)."""
        configured = self.settings.generation_model
        if configured and not Path(configured).is_absolute():
            return configured  # a model named by id, e.g. `HuggingFaceTB/SmolLM2-135M-Instruct`
        return Path(self.settings.generation_model_path).name

    @property
    def ttl_s(self) -> float:
        return min(INTERACTIVE_TTL_S, self.settings.max_ttl_s)

    # --- Jobs ----------------------------------------------------------------------------------

    def text_updates(self, job_ids: Sequence[str]) -> AbstractAsyncContextManager[TextUpdates]:
        """The streamed text of the jobs as it grows (see `api.openai.updates`)."""
        return text_updates(self.settings.redis_url, job_ids)

    async def submit(self, bodies: Sequence[JobCreate], tenant: str = DEFAULT_TENANT) -> list[JobOut]:
        """Store and enqueue validated jobs of `tenant` (all or none), in one transaction and one Redis
        write."""
        return await run_in_threadpool(self._create, list(bodies), tenant)

    def _create(self, bodies: list[JobCreate], tenant: str) -> list[JobOut]:
        return self._jobs.create(bodies, tenant=tenant)

    def deadline_s(self, body: JobCreate) -> float:
        """How long the API waits for `body`'s job: its queue time, run time, and a grace period."""
        run_s = body.params.timeout_s or self.settings.default_timeout_s
        return (body.params.ttl_s or self.ttl_s) + run_s + INTERACTIVE_GRACE_S

    async def wait(self, job_id: str, timeout_s: float) -> JobOut:
        """The job once terminal, or as it is after `timeout_s`. Long-polls in `max_wait_s` steps on
        the process's job announcements; backs off when those are unavailable (the process holds too
        many waits, or lost its subscription) and a poll answers at once."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        pause = 0.05
        while True:
            step = max(min(deadline - loop.time(), self.settings.max_wait_s), 0.001)
            started = loop.time()
            job = await self._waiter.wait(job_id, step)
            if job.status.is_terminal or loop.time() >= deadline:
                return job
            if loop.time() - started < step / 2:
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)

    async def run(self, bodies: Sequence[JobCreate], tenant: str = DEFAULT_TENANT) -> list[JobOut]:
        """Submit the jobs (of `tenant`) and wait for every one's end (a job still running at its
        deadline is canceled: nobody is waiting for it any more)."""
        jobs = await self.submit(bodies, tenant)
        return list(
            await asyncio.gather(*(self.finish(job.id, body) for job, body in zip(jobs, bodies, strict=True)))
        )

    async def finish(self, job_id: str, body: JobCreate) -> JobOut:
        """Wait for one submitted job's end; cancel it if the wait is given up (deadline or the
        request's own cancellation: a client that went away)."""
        done = False
        try:
            job = await self.wait(job_id, self.deadline_s(body))
            done = job.status.is_terminal
            return job
        finally:
            if not done:
                await asyncio.shield(self.cancel(job_id))

    async def cancel(self, job_id: str) -> None:
        """Cancel a job nobody waits for any more (nothing if it already ended)."""
        try:
            await run_in_threadpool(self._cancel, job_id)
        except (ConflictError, JobNotFoundError):
            return
        except Exception as exc:  # best effort: the job still ends by its own deadlines
            log.warning("openai.cancel_failed", job_id=job_id, error_type=type(exc).__name__)
            return
        log.info("openai.job_abandoned", job_id=job_id)

    def _cancel(self, job_id: str) -> None:
        with self._jobs.sessions() as session:
            cancel_job(session, self._jobs.celery, job_id)
