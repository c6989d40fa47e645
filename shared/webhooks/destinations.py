"""Checking the webhook URLs of a submission (jobs, a job batch, a batch and its lines) before anything
is stored: each distinct host is looked up once, the lookups run side by side on a small thread pool,
and all of them together wait at most `webhook_dns_timeout_s`.

`url_problems` says what is wrong with each URL (for a batch file's line errors); `check_webhook_urls`
raises the `422` of the first bad one, naming its field.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait

from shared.errors import InvalidInputError
from shared.webhooks.addresses import AllowList
from shared.webhooks.policy import UnsafeWebhookURLError, vet_destination
from shared.webhooks.settings import WebhookSafetySettings

__all__ = ["check_webhook_urls", "url_problems"]

#: Lookups of one process at once (a batch may name many hosts; each lookup is a blocking call).
_LOOKUPS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="webhook-dns")


def _problem(url: str, allowed: AllowList) -> str | None:
    try:
        vet_destination(url, allowed, look_up_allowed=False)
    except UnsafeWebhookURLError as exc:
        return str(exc)
    except socket.gaierror as exc:
        host = url.split("://", 1)[-1].split("/", 1)[0]
        return f"webhook host {host} does not resolve ({exc.strerror or exc})"
    except OSError as exc:
        return f"webhook host cannot be resolved: {exc}"
    return None


def url_problems(urls: Iterable[str], settings: WebhookSafetySettings) -> dict[str, str]:
    """URL -> why webhooks must not go there, for each bad one of `urls` (checked once each, side by
    side; one still unresolved after `webhook_dns_timeout_s` is bad too)."""
    allowed = settings.allow_list
    distinct = list(dict.fromkeys(urls))
    if not distinct:
        return {}
    futures = {url: _LOOKUPS.submit(_problem, url, allowed) for url in distinct}
    done, _ = wait(futures.values(), timeout=settings.webhook_dns_timeout_s)
    problems: dict[str, str] = {}
    for url, task in futures.items():
        if task not in done:
            task.cancel()
            problems[url] = (
                f"webhook host of {url} did not resolve within {settings.webhook_dns_timeout_s:g} s"
            )
        else:
            problem = task.result()
            if problem is not None:
                problems[url] = problem
    return problems


def check_webhook_urls(fields: Sequence[tuple[str, str]], settings: WebhookSafetySettings) -> None:
    """Raise InvalidInputError (`422`) for the first `(field, url)` whose URL must not be called,
    naming the field (`webhook`, `jobs.3.webhook`) and the problem."""
    problems = url_problems((url for _, url in fields), settings)
    for field, url in fields:
        problem = problems.get(url)
        if problem is not None:
            raise InvalidInputError(f"{field}: {problem}", field=field, code="unsafe_webhook_url")
