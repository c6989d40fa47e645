"""Checking the webhook URLs of a submission (jobs, a job batch, a batch and its lines) before anything
is stored: each distinct host is looked up once, the lookups run side by side on a small thread pool,
and all of them together wait at most `webhook_dns_timeout_s`. A host the allow-list names is not
looked up (the delivery still checks its addresses: a metadata address stays refused).

`url_problems` says what is wrong with each URL (for a batch file's line errors); `check_webhook_urls`
raises the `422` of the first bad one, naming its field.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait

from shared.errors import InvalidInputError
from shared.webhooks.addresses import AllowList
from shared.webhooks.policy import UnsafeWebhookURLError, check_url_scheme, vet_destination
from shared.webhooks.settings import WebhookSafetySettings

__all__ = ["check_webhook_urls", "url_problems"]

#: Lookups of one process at once (a batch may name many hosts; each lookup is a blocking call).
_LOOKUPS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="webhook-dns")


def _host_problem(host: str, port: int, allowed: AllowList) -> str | None:
    try:
        vet_destination(f"http://{_netloc(host, port)}/", allowed, look_up_allowed=False)
    except UnsafeWebhookURLError as exc:
        return str(exc)
    except socket.gaierror as exc:
        return f"webhook host {host} does not resolve ({exc.strerror or exc})"
    except OSError as exc:
        return f"webhook host {host} cannot be resolved: {exc}"
    return None


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def url_problems(urls: Iterable[str], settings: WebhookSafetySettings) -> dict[str, str]:
    """URL -> why webhooks must not go there, for each bad one of `urls`. Each distinct host and port
    is looked up once, side by side; one still unresolved after `webhook_dns_timeout_s` is bad too."""
    allowed = settings.allow_list
    problems: dict[str, str] = {}
    targets: dict[str, tuple[str, int]] = {}
    for url in dict.fromkeys(urls):
        try:
            _scheme, host, port = check_url_scheme(url)
        except UnsafeWebhookURLError as exc:
            problems[url] = str(exc)
        else:
            targets[url] = (host.lower(), port)
    if not targets:
        return problems
    lookups = {key: _LOOKUPS.submit(_host_problem, *key, allowed) for key in dict.fromkeys(targets.values())}
    done, _ = wait(lookups.values(), timeout=settings.webhook_dns_timeout_s)
    for url, key in targets.items():
        task = lookups[key]
        if task not in done:
            task.cancel()
            problems[url] = (
                f"webhook host {key[0]} did not resolve within {settings.webhook_dns_timeout_s:g} s"
            )
            continue
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
