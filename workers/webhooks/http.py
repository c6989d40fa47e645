"""One webhook POST: the payload, the Standard Webhooks signature, the destination check, the request.

The client is an `httpx.AsyncClient` shared by every delivery of a worker: pooled keep-alive
connections, HTTP/2 where the receiver offers it (ALPN on https), no redirects followed, no proxies from
the environment (the destination check must see the real destination).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from standardwebhooks import Webhook

from shared.db.models import Job, utcnow
from shared.db.repository import to_out
from shared.errors import ConfigurationError
from shared.settings import Settings
from shared.webhooks import (
    EVENT_TYPES,
    USER_AGENT,
    UnsafeWebhookURLError,
    check_url_scheme,
    resolve_public_addresses,
)

__all__ = ["Attempt", "Destinations", "build_payload", "make_http_client", "make_signer", "post"]

#: Longest error text kept (the `last_error` column's size).
MAX_ERROR = 500


@dataclass(frozen=True)
class Attempt:
    """What one POST got: a status code, or an error; `permanent` failures are never retried.
    `kind` is a bounded label for metrics: ok, timeout, connect, redirect, http_4xx, http_5xx, refused,
    dns, other."""

    status_code: int | None
    error: str | None
    permanent: bool
    kind: str

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def make_http_client(settings: Settings) -> httpx.AsyncClient:
    """The delivery client of a webhook worker (see the module docstring)."""
    size = settings.webhook_concurrency
    return httpx.AsyncClient(
        http2=True,
        follow_redirects=False,
        timeout=settings.webhook_timeout_s,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
        limits=httpx.Limits(max_connections=size, max_keepalive_connections=size, keepalive_expiry=30),
    )


def make_signer(settings: Settings) -> Webhook:
    """The signer of every delivery (the secret is decoded once)."""
    if settings.webhook_secret is None or not settings.webhook_secret.get_secret_value():
        raise ConfigurationError("TEXTFLEET_WEBHOOK_SECRET is not set: webhook deliveries cannot be signed")
    return Webhook(settings.webhook_secret.get_secret_value())


def build_payload(job: Job, event: str, event_time: datetime) -> str:
    """The JSON body of an event: `{"type", "timestamp", "data"}` with the job as the API shows it."""
    data = to_out(job)
    if data.webhook is None:  # to_out may leave the webhook fields out
        data = data.model_copy(update={"webhook": job.webhook, "webhook_events": job.webhook_events or []})
    body = {
        "type": EVENT_TYPES[event],
        "timestamp": event_time.isoformat().replace("+00:00", "Z"),
        "data": data.model_dump(mode="json"),
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


class Destinations:
    """Where a webhook URL may be sent. Unless `webhook_allow_private`, every address the host
    resolves to must be public, and the request goes to the checked address (Host header and TLS SNI
    keep the name), so a second DNS answer cannot redirect it. Answers are kept `ttl_s` seconds."""

    def __init__(self, settings: Settings, ttl_s: float = 30.0) -> None:
        self.settings = settings
        self.ttl_s = ttl_s
        self._cache: dict[tuple[str, int], tuple[float, list[str]]] = {}

    async def resolve(self, url: str) -> tuple[str, dict[str, str], dict[str, Any]]:
        """(URL to request, extra headers, request extensions). Raises UnsafeWebhookURLError for a
        refused URL, OSError when the name does not resolve."""
        scheme, host, port = check_url_scheme(url)
        if self.settings.webhook_allow_private:
            return url, {}, {}
        key = (host, port)
        cached = self._cache.get(key)
        if cached is None or cached[0] < time.monotonic():
            addresses = await asyncio.to_thread(resolve_public_addresses, host, port)
            self._cache[key] = (time.monotonic() + self.ttl_s, addresses)
        else:
            addresses = cached[1]
        address = addresses[0]
        if address == host.strip("[]"):
            return url, {}, {}
        parsed = httpx.URL(url)
        extensions: dict[str, Any] = {"sni_hostname": host} if scheme == "https" else {}
        return str(parsed.copy_with(host=address)), {"host": parsed.netloc.decode("ascii")}, extensions


async def post(
    http: httpx.AsyncClient,
    destinations: Destinations,
    signer: Webhook,
    msg_id: str,
    url: str,
    body: bytes,
    timeout_s: float,
) -> Attempt:
    """One signed POST of `body`, bounded by `timeout_s` in all (DNS, connect, write, read)."""
    try:
        request_url, extra_headers, extensions = await destinations.resolve(url)
    except UnsafeWebhookURLError as exc:
        return Attempt(None, str(exc), True, "refused")
    except OSError as exc:  # the name did not resolve: DNS may come back
        return Attempt(None, f"cannot resolve webhook host: {exc}", False, "dns")
    sent_at = utcnow()
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signer.sign(msg_id, sent_at, body.decode()),
        **extra_headers,
    }
    try:
        async with asyncio.timeout(timeout_s):
            async with http.stream(
                "POST", request_url, content=body, headers=headers, extensions=extensions
            ) as response:  # the body is never read: only the status matters
                code = response.status_code
    except (TimeoutError, httpx.TimeoutException) as exc:
        return Attempt(None, f"timeout after {timeout_s:g} s ({type(exc).__name__})", False, "timeout")
    except httpx.ConnectError as exc:
        return Attempt(None, f"ConnectError: {exc}", False, "connect")
    except httpx.HTTPError as exc:
        return Attempt(None, f"{type(exc).__name__}: {exc}", False, "other")
    if 200 <= code < 300:
        return Attempt(code, None, False, "ok")
    if 300 <= code < 400:
        return Attempt(code, f"HTTP {code}: redirects are not followed", False, "redirect")
    return Attempt(code, f"HTTP {code}", False, "http_5xx" if code >= 500 else "http_4xx")


def clip(error: str | None) -> str | None:
    """An error text cut to the column's size."""
    if error is None or len(error) <= MAX_ERROR:
        return error
    return error[: MAX_ERROR - 3] + "..."
