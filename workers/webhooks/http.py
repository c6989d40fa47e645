"""One webhook POST: the payload, the Standard Webhooks signature, the destination check, the request.

Requests go through a `Sender` shared by every delivery of a worker: an aiohttp session (pooled
keep-alive HTTP/1.1 connections; about a tenth of httpx's CPU per request, which is what lets one
worker send thousands a second) and, with `webhook_http2`, an `httpx.AsyncClient(http2=True)` for
https endpoints, which speaks HTTP/2 where the receiver offers it (ALPN) and HTTP/1.1 elsewhere. No
redirects are followed and no proxies are taken from the environment (the destination check must
see the real destination).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import datetime

import aiohttp
import httpx
from standardwebhooks import Webhook

from shared.batch_objects import BatchOut
from shared.db.models import Job, utcnow
from shared.db.repository import to_out
from shared.errors import ConfigurationError
from shared.settings import Settings
from shared.webhooks.addresses import IPAddress, parse_address
from shared.webhooks.policy import USER_AGENT, UnsafeWebhookURLError, check_url_scheme, resolve, vet
from shared.webhooks.records import BATCH_EVENT_TYPES, EVENT_TYPES

__all__ = [
    "Attempt",
    "Destinations",
    "Sender",
    "Signers",
    "build_batch_payload",
    "build_payload",
    "make_signer",
    "post",
]

#: Longest error text kept (the `last_error` column's size).
MAX_ERROR = 500
#: Response bodies up to this size are read, so their keep-alive connection can be reused.
MAX_RESPONSE_BYTES = 64 * 1024


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


class Sender:
    """The HTTP clients of one worker (created on first use, inside its event loop)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._h2: httpx.AsyncClient | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.settings.webhook_concurrency,
                limit_per_host=0,  # per-endpoint limits are the engine's
                keepalive_timeout=30,
                ttl_dns_cache=30,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": USER_AGENT},
                auto_decompress=False,
                trust_env=False,
                timeout=aiohttp.ClientTimeout(total=self.settings.webhook_timeout_s),
            )
        return self._session

    @property
    def h2(self) -> httpx.AsyncClient:
        if self._h2 is None:
            size = self.settings.webhook_concurrency
            self._h2 = httpx.AsyncClient(
                http2=True,
                follow_redirects=False,
                timeout=self.settings.webhook_timeout_s,
                trust_env=False,
                headers={"User-Agent": USER_AGENT},
                limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
            )
        return self._h2

    async def send(self, url: str, body: bytes, headers: dict[str, str], sni: str | None) -> int:
        """POST and return the status code; a short response body is read so the connection is
        reused, a long one is dropped with its connection. Raises aiohttp/httpx errors."""
        if self.settings.webhook_http2 and url.startswith("https:"):
            extensions = {"sni_hostname": sni} if sni else {}
            async with self.h2.stream("POST", url, content=body, headers=headers, extensions=extensions) as r:
                size = 0
                async for chunk in r.aiter_raw():
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        break
                return r.status_code
        async with self.session.post(
            url, data=body, headers=headers, allow_redirects=False, server_hostname=sni
        ) as response:
            if len(await response.content.read(MAX_RESPONSE_BYTES + 1)) > MAX_RESPONSE_BYTES:
                response.close()
            return response.status

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._h2 is not None:
            await self._h2.aclose()
            self._h2 = None


def make_signer(settings: Settings) -> Webhook:
    """The signer of every delivery without a tenant secret (the secret is decoded once)."""
    if settings.webhook_secret is None or not settings.webhook_secret.get_secret_value():
        raise ConfigurationError("TEXTFLEET_WEBHOOK_SECRET is not set: webhook deliveries cannot be signed")
    return Webhook(settings.webhook_secret.get_secret_value())


class Signers:
    """The global signer, and one per tenant secret in use (`shared.webhooks.tenant_secrets`), each
    secret decoded once. A tenant's secret is read with its delivery, so a change applies to the next
    attempt."""

    #: Most tenant signers kept (then the cache starts over).
    MAX_KEPT = 10_000

    def __init__(self, settings: Settings) -> None:
        self.default = make_signer(settings)
        self._own: dict[str, Webhook] = {}

    def get(self, secret: str | None) -> Webhook:
        """The signer of a delivery whose tenant has `secret` (None: the global one)."""
        if secret is None:
            return self.default
        signer = self._own.get(secret)
        if signer is None:
            if len(self._own) >= self.MAX_KEPT:
                self._own.clear()
            signer = self._own[secret] = Webhook(secret)
        return signer


def build_payload(job: Job, event: str, event_time: datetime) -> str:
    """The JSON body of an event: `{"type", "timestamp", "data"}` with the job as the API shows it."""
    data = to_out(job)
    if data.webhook is None:  # to_out may leave the webhook fields out
        data = data.model_copy(update={"webhook": job.webhook, "webhook_events": job.webhook_events or []})
    return _envelope(EVENT_TYPES[event], event_time, data.model_dump_json())


def build_batch_payload(batch: BatchOut, event: str, event_time: datetime) -> str:
    """The JSON body of a batch's event (`event`: the status it ended in): `{"type", "timestamp",
    "data"}`, `type` OpenAI's event name (`batch.completed`, ...), `data` the batch object (OpenAI's
    events carry `data.id`; this one carries the whole batch, `id` included)."""
    return _envelope(BATCH_EVENT_TYPES[event], event_time, batch.model_dump_json())


def _envelope(event_type: str, event_time: datetime, data_json: str) -> str:
    head = json.dumps(
        {"type": event_type, "timestamp": event_time.isoformat().replace("+00:00", "Z")},
        separators=(",", ":"),
    )
    return f'{head[:-1]},"data":{data_json}}}'  # pydantic serialises the subject itself


class Destinations:
    """Where a webhook URL may be sent, checked on every attempt (`shared.webhooks.policy`): every
    address the host resolves to must be public or allow-listed, and the request goes to the checked
    address (the Host header and TLS SNI keep the name), so a later DNS answer (rebinding) cannot
    send it elsewhere. A host's answer is reused `webhook_dns_cache_s` seconds (and checked again on
    each use); concurrent attempts to one host share one lookup."""

    def __init__(self, settings: Settings) -> None:
        safety = settings.webhook_safety
        self.allowed = safety.allow_list
        self.ttl_s = safety.webhook_dns_cache_s
        self.timeout_s = safety.webhook_dns_timeout_s
        self._cache: dict[tuple[str, int], tuple[float, list[IPAddress]]] = {}
        self._lookups: dict[tuple[str, int], asyncio.Future[list[IPAddress]]] = {}

    async def resolve(self, url: str) -> tuple[str, dict[str, str], str | None]:
        """(URL to request, extra headers, TLS server name). Raises UnsafeWebhookURLError for a
        refused URL, OSError when the name does not resolve (in time)."""
        scheme, host, port = check_url_scheme(url)
        host = host.lower()
        literal = parse_address(host)
        if literal is not None:  # an IP literal: no lookup, and the URL already names the address
            vet(host, [literal], self.allowed)
            return url, {}, None
        address = vet(host, await self._addresses(host, port), self.allowed)[0]
        parsed = httpx.URL(url)
        sni = host if scheme == "https" else None
        return str(parsed.copy_with(host=str(address))), {"host": parsed.netloc.decode("ascii")}, sni

    async def _addresses(self, host: str, port: int) -> list[IPAddress]:
        key = (host, port)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        pending = self._lookups.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._look_up(host, port))
            self._lookups[key] = pending
            pending.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(pending)

    def _finished(self, key: tuple[str, int], done: asyncio.Future[list[IPAddress]]) -> None:
        self._lookups.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: the attempts that waited for it report it

    async def _look_up(self, host: str, port: int) -> list[IPAddress]:
        try:
            async with asyncio.timeout(self.timeout_s):
                addresses = await asyncio.to_thread(resolve, host, port)
        except TimeoutError as exc:
            raise OSError(f"no DNS answer for {host} within {self.timeout_s:g} s") from exc
        if self.ttl_s > 0:
            self._cache[(host, port)] = (time.monotonic() + self.ttl_s, addresses)
            if len(self._cache) > 10_000:  # many one-off hosts: drop the expired answers
                now = time.monotonic()
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
        return addresses


async def post(
    sender: Sender,
    destinations: Destinations,
    signer: Webhook,
    msg_id: str,
    url: str,
    body: bytes,
    timeout_s: float,
) -> Attempt:
    """One signed POST of `body` to the checked address of `url` (its lookup bounded by
    `webhook_dns_timeout_s`), bounded by `timeout_s` (connect, write, read). Redirects are not
    followed: a 3xx is a failed attempt."""
    try:
        request_url, extra_headers, sni = await destinations.resolve(url)
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
            code = await sender.send(request_url, body, headers, sni)
    except (TimeoutError, httpx.TimeoutException) as exc:
        return Attempt(None, f"timeout after {timeout_s:g} s ({type(exc).__name__})", False, "timeout")
    except (aiohttp.ClientConnectorError, httpx.ConnectError) as exc:
        return Attempt(None, f"ConnectError: {exc}", False, "connect")
    except (aiohttp.ClientError, httpx.HTTPError) as exc:
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
