"""What a webhook delivery may do: which destinations may be called, how textfleet names itself to
receivers, and when a failed attempt is tried again.

Destinations: http(s) URLs whose host resolves only to public addresses (`shared.webhooks.addresses`
judges each address), unless the allow-list (`TEXTFLEET_WEBHOOK_ALLOW`, `shared.webhooks.settings`)
names the host or a network holding the address. The same check runs when a job or batch is
submitted (`shared.webhooks.destinations`: a `422` naming the problem) and on every delivery attempt
(`workers.webhooks.http`), which connects to the very address it checked; redirects are never
followed (a `3xx` is a failed attempt).

Names are resolved through this module's `getaddrinfo` (the socket module's), which tests replace
with resolvers of their own.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.webhooks.addresses import (
    AllowList,
    IPAddress,
    embedded_ipv4,
    is_metadata,
    non_public_reason,
    parse_address,
)

__all__ = [
    "BACKOFF_JITTER",
    "BACKOFF_SCHEDULE_S",
    "USER_AGENT",
    "Destination",
    "UnsafeWebhookURLError",
    "check_url_scheme",
    "getaddrinfo",
    "is_public_address",
    "refusal",
    "resolve",
    "vet",
    "vet_destination",
]

#: The User-Agent of every delivery.
USER_AGENT = "textfleet-webhooks/0.1"

#: Delay after the n-th failed attempt (n = 1, 2, ...): 5 s, 30 s, 2 min, 10 min, 30 min, then every
#: 50 min until `webhook_max_age_s` after the event. The ceiling stays below the broker's visibility
#: timeout (1 h, setting `broker_visibility_timeout_s`): a Redis message held back (Celery `countdown`)
#: longer than that would be handed out twice. With the default 24 h: about 33 attempts.
BACKOFF_SCHEDULE_S: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0, 1800.0, 3000.0)
#: Retry delays are drawn from [(1 - BACKOFF_JITTER) x, x] of the schedule (`shared.backoff`), so the
#: retries of many deliveries that failed together (an endpoint that was down) do not all come back at
#: once.
BACKOFF_JITTER = 0.2

#: The resolver of webhook hosts (tests put their own here).
getaddrinfo = socket.getaddrinfo

_ALLOW_HINT = "TEXTFLEET_WEBHOOK_ALLOW can allow it"
_METADATA_HINT = "refused unless TEXTFLEET_WEBHOOK_ALLOW names that very address"


class UnsafeWebhookURLError(ValueError):
    """A webhook URL that must not be called (bad scheme, or a private/loopback/... address)."""


@dataclass(frozen=True)
class Destination:
    """A checked webhook URL: where to connect (`addresses`, every one allowed; empty when the host is
    allow-listed by name and was not looked up)."""

    scheme: str
    host: str  # as in the URL, lower-cased, without brackets
    port: int
    addresses: tuple[IPAddress, ...]


def check_url_scheme(url: str) -> tuple[str, str, int]:
    """`(scheme, host, port)` of an http(s) URL; UnsafeWebhookURLError for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeWebhookURLError(f"invalid webhook URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"}:
        raise UnsafeWebhookURLError(f"webhook URL scheme must be http or https, not {scheme or 'none'!r}")
    if not parts.hostname:
        raise UnsafeWebhookURLError("webhook URL has no host")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80)


def is_public_address(address: str) -> bool:
    """Whether an IP address is a public, globally routable unicast one (`addresses.non_public_reason`)."""
    ip = parse_address(address)
    if ip is None:
        raise ValueError(f"{address!r} is not an IP address")
    return non_public_reason(ip) is None


def refusal(host: str, ip: IPAddress, allowed: AllowList) -> str | None:
    """Why `host`'s address `ip` must not be called under `allowed` (None: it may)."""
    reason = non_public_reason(ip)
    if reason is None:
        return None
    if is_metadata(ip):
        carried = embedded_ipv4(ip)
        if allowed.names_address(ip) or (carried is not None and allowed.names_address(carried)):
            return None
        return f"{reason}; {_METADATA_HINT}"
    if allowed.allows_host(host) or allowed.allows_address(ip):
        return None
    return f"{reason}; {_ALLOW_HINT}"


def vet(host: str, addresses: list[IPAddress], allowed: AllowList) -> list[IPAddress]:
    """`addresses` if every one may be called, else UnsafeWebhookURLError naming the first that may
    not (a name that resolves to a public and a private address is refused: either may be used)."""
    literal = parse_address(host)
    for ip in addresses:
        problem = refusal(host, ip, allowed)
        if problem is not None:
            if literal is not None:
                raise UnsafeWebhookURLError(f"webhook address {ip} is {problem}")
            raise UnsafeWebhookURLError(f"webhook host {host} resolves to {ip}, {problem}")
    return addresses


def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses of `host` (an IP literal as it is, a name through `getaddrinfo`), without
    duplicates, in the resolver's order. OSError (socket.gaierror) when the name does not resolve."""
    literal = parse_address(host)
    if literal is not None:
        return [literal]
    infos = getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: dict[IPAddress, None] = {}
    for info in infos:
        ip = parse_address(str(info[4][0]))
        if ip is not None:
            found[ip] = None
    if not found:
        raise OSError(f"{host} has no address")
    return list(found)


def vet_destination(url: str, allowed: AllowList, *, look_up_allowed: bool = True) -> Destination:
    """Check a webhook URL now: scheme, then every address its host resolves to.

    UnsafeWebhookURLError when it must not be called; OSError when the name does not resolve. With
    `look_up_allowed=False` a host the allow-list names is not looked up (`addresses` is empty): the
    submission check; a delivery always looks up and checks (a metadata address stays refused).
    """
    scheme, host, port = check_url_scheme(url)
    host = host.lower()
    if not look_up_allowed and parse_address(host) is None and allowed.allows_host(host):
        return Destination(scheme, host, port, ())
    return Destination(scheme, host, port, tuple(vet(host, resolve(host, port), allowed)))
