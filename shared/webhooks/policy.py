"""What a webhook delivery may do: which destinations may be called (http(s) only; public addresses
only unless `webhook_allow_private`), how textfleet names itself to receivers, and when a failed
attempt is tried again.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

__all__ = [
    "BACKOFF_JITTER",
    "BACKOFF_SCHEDULE_S",
    "USER_AGENT",
    "UnsafeWebhookURLError",
    "check_url_scheme",
    "is_public_address",
    "resolve_public_addresses",
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


class UnsafeWebhookURLError(ValueError):
    """A webhook URL that must not be called (bad scheme, or a private/loopback/... address)."""


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
    """Whether an IP address is a globally routable unicast one (not private, loopback, link-local,
    reserved, shared, multicast or unspecified; IPv4-mapped IPv6 is judged as its IPv4 address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


def resolve_public_addresses(host: str, port: int) -> list[str]:
    """Resolve `host` now (socket.getaddrinfo) and return its addresses if every one is public.

    Raises UnsafeWebhookURLError when any address is not public (a name that resolves to both is
    refused too), and OSError (socket.gaierror) when the name does not resolve.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise OSError(f"{host} has no address")
    refused = [a for a in addresses if not is_public_address(a)]
    if refused:
        raise UnsafeWebhookURLError(
            f"webhook host {host} resolves to a non-public address ({', '.join(refused)}); "
            "private, loopback, link-local and reserved addresses are refused "
            "(TEXTFLEET_WEBHOOK_ALLOW_PRIVATE=true allows them)"
        )
    return addresses
