"""Webhook destination checks of the submitting routes: a job's, a job batch's, a batch's and a
batch file's lines' webhook URLs must resolve to public (or allow-listed) addresses
(`shared.webhooks.destinations`), checked before anything is stored. DNS lookups run off the event
loop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from pydantic import AnyUrl
from starlette.concurrency import run_in_threadpool

from shared.settings import Settings
from shared.webhooks.destinations import check_webhook_urls, url_problems
from shared.webhooks.settings import WebhookSafetySettings

__all__ = ["check_batch_webhook", "check_job_webhooks", "line_webhook_errors"]


class _WithWebhook(Protocol):
    @property
    def webhook(self) -> AnyUrl | None: ...


async def check_job_webhooks(
    bodies: Sequence[_WithWebhook], settings: Settings, *, batch: bool = False
) -> None:
    """`422` naming the first job (`webhook`, or `jobs.<i>.webhook` in a batch) whose webhook URL must
    not be called. Run after `check_webhooks` (which says when webhooks are off altogether)."""
    fields = [
        (f"jobs.{index}.webhook" if batch else "webhook", str(body.webhook))
        for index, body in enumerate(bodies)
        if body.webhook is not None
    ]
    if fields:
        await run_in_threadpool(check_webhook_urls, fields, settings.webhook_safety)


async def check_batch_webhook(url: AnyUrl | None, settings: Settings) -> None:
    """The same for a batch's own `webhook` (only when webhooks are on: otherwise the batch service
    says they are off)."""
    if url is not None and settings.webhook_secret is not None:
        await run_in_threadpool(check_webhook_urls, [("webhook", str(url))], settings.webhook_safety)


class _Line(Protocol):
    @property
    def line(self) -> int: ...

    @property
    def jobs(self) -> Sequence[_WithWebhook]: ...


def line_webhook_errors(
    lines: Sequence[_Line], safety: WebhookSafetySettings, max_errors: int
) -> list[dict[str, Any]]:
    """The batch line errors (`{code, message, param, line}`) of lines whose jobs' webhook URLs must
    not be called, at most `max_errors` (blocking: runs inside the batch service's thread)."""
    urls = [str(job.webhook) for line in lines for job in line.jobs if job.webhook is not None]
    problems = url_problems(urls, safety) if urls else {}
    errors: list[dict[str, Any]] = []
    for line in lines:
        hooks = [str(job.webhook) for job in line.jobs if job.webhook is not None]
        found = next((problems[url] for url in hooks if url in problems), None)
        if found is not None and len(errors) < max_errors:
            message = f"line {line.line}: {found}"
            errors.append(
                {"code": "invalid_body", "message": message, "param": "body.webhook", "line": line.line}
            )
    return errors
