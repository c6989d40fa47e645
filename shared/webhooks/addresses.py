"""Which IP addresses a webhook may be sent to, and the operator's allow-list of exceptions.

Standard library only (`ipaddress`), so the settings group can parse the allow-list without importing
anything else of textfleet. Python's `is_global` alone is not enough (in 3.11 it calls
`fec0::1`, `::7f00:1` or the Oracle metadata address 192.0.0.192 global), so every class a webhook
must not reach is named here, in the order it is judged.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TypeAlias

__all__ = [
    "METADATA_ADDRESSES",
    "AllowList",
    "IPAddress",
    "IPNetwork",
    "embedded_ipv4",
    "is_metadata",
    "non_public_reason",
    "parse_address",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Instance metadata and platform endpoints of cloud providers: refused even when a network around
#: them is allow-listed (only an allow-list entry naming the address itself admits one).
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, Oracle, OpenStack, DigitalOcean, ... instance metadata
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "169.254.170.23",  # AWS EKS Pod Identity agent
        "169.254.169.253",  # AWS VPC DNS resolver
        "169.254.169.123",  # AWS time sync
        "100.100.100.200",  # Alibaba Cloud metadata
        "192.0.0.192",  # Oracle Cloud (legacy) metadata
        "168.63.129.16",  # Azure WireServer (a public-range address)
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "fd00:ec2::23",  # AWS EKS Pod Identity agent over IPv6
    )
)

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
_THIS_NETWORK = _V4("0.0.0.0/8")
_CGNAT = _V4("100.64.0.0/10")
_RFC1918 = (_V4("10.0.0.0/8"), _V4("172.16.0.0/12"), _V4("192.168.0.0/16"))
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_NAT64 = _V6("64:ff9b::/96")
_NAT64_LOCAL = _V6("64:ff9b:1::/48")
_SIX_TO_FOUR = _V6("2002::/16")
_IPV4_COMPATIBLE = _V6("::/96")
_UNIQUE_LOCAL = _V6("fc00::/7")


def parse_address(text: str) -> IPAddress | None:
    """The IP address `text` spells (brackets and an IPv6 zone id dropped), or None if it is not one."""
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, NAT64 or 6to4), else None."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def is_metadata(ip: IPAddress) -> bool:
    """Whether `ip` is (or carries) a cloud metadata address."""
    return ip in METADATA_ADDRESSES or embedded_ipv4(ip) in METADATA_ADDRESSES


def non_public_reason(ip: IPAddress) -> str | None:
    """Why a webhook must not be sent to `ip` ("a loopback address", ...), or None if it is a public,
    globally routable unicast address. Addresses that embed an IPv4 address (IPv4-mapped, NAT64,
    6to4) are judged by that address."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(ip, ipaddress.IPv4Address):
        return _ipv4_reason(ip)
    if ip.ipv4_mapped is not None:
        return _embedded("an IPv4-mapped IPv6 address", ip.ipv4_mapped)
    if ip in _NAT64:
        return _embedded("a NAT64 address", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        return _embedded("a 6to4 address", ip.sixtofour)
    checks: tuple[tuple[bool, str], ...] = (
        (ip.is_unspecified, "the unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_site_local, "a site-local address"),
        (ip in _UNIQUE_LOCAL, "a private (unique local) address"),
        (ip.is_multicast, "a multicast address"),
        (ip in _NAT64_LOCAL, "a local-use NAT64 address"),
        (ip in _IPV4_COMPATIBLE, "an IPv4-compatible IPv6 address (deprecated)"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "a special-purpose address (not globally routable)"),
    )
    return next((reason for hit, reason in checks if hit), None)


def _ipv4_reason(ip: ipaddress.IPv4Address) -> str | None:
    checks: tuple[tuple[bool, str], ...] = (
        (ip in _THIS_NETWORK, "the unspecified address ('this network', 0.0.0.0/8)"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip in _CGNAT, "a shared (CGNAT, 100.64.0.0/10) address"),
        (any(ip in net for net in _RFC1918), "a private address"),
        (ip.is_multicast, "a multicast address"),
        (ip == _BROADCAST, "the broadcast address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "a special-purpose address (not globally routable)"),
    )
    return next((reason for hit, reason in checks if hit), None)


def _embedded(kind: str, ip: ipaddress.IPv4Address) -> str | None:
    reason = non_public_reason(ip)
    return None if reason is None else f"{kind} of {ip}, {reason}"


@dataclass(frozen=True)
class AllowList:
    """Destinations an operator permits although they are not public.

    Entries: an IP network (`10.0.0.0/8`, `fd00::/8`) or address (`127.0.0.1`, `::1`); a host name
    (`receiver.internal`: that name, whatever it resolves to); `*.` and a domain (`*.svc.cluster.local`:
    every name under it, not the domain itself). Cloud metadata addresses stay refused unless an entry
    is that very address (`169.254.169.254`), never merely a network holding it.
    """

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()
    domains: tuple[str, ...] = ()  # ".svc.cluster.local"

    @classmethod
    def parse(cls, entries: list[str] | tuple[str, ...]) -> AllowList:
        """The allow-list of `entries`; ValueError naming the first entry that is none of the above."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        domains: list[str] = []
        for raw in entries:
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            address = parse_address(entry)
            if address is not None:
                networks.append(ipaddress.ip_network(address))
            elif "/" in entry:
                try:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError as exc:
                    raise ValueError(
                        f"webhook allow-list entry {raw!r} is not a valid network: {exc}"
                    ) from exc
            elif entry.startswith("*.") and _is_host_name(entry[2:]):
                domains.append(entry[1:])
            elif _is_host_name(entry):
                hosts.add(entry)
            else:
                raise ValueError(
                    f"webhook allow-list entry {raw!r} is neither an IP address or network, a host name, "
                    "nor '*.' and a domain"
                )
        return cls(tuple(networks), frozenset(hosts), tuple(domains))

    def __bool__(self) -> bool:
        return bool(self.networks or self.hosts or self.domains)

    def allows_host(self, host: str) -> bool:
        """Whether the host name itself is allow-listed (by name or by its domain)."""
        name = host.lower().rstrip(".")
        return name in self.hosts or any(name.endswith(domain) for domain in self.domains)

    def allows_address(self, ip: IPAddress) -> bool:
        """Whether an allow-listed network holds `ip` (or the IPv4 address an IPv4-mapped one carries)."""
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        return any(c in net for c in candidates for net in self.networks if net.version == c.version)

    def names_address(self, ip: IPAddress) -> bool:
        """Whether an entry is `ip` itself (a single-address network): what admits a metadata address."""
        return any(net.num_addresses == 1 and net.network_address == ip for net in self.networks)

    def with_everything(self) -> AllowList:
        """This list plus every network (the legacy `webhook_allow_private=true`); metadata addresses
        stay refused unless named."""
        everything = (_V4("0.0.0.0/0"), _V6("::/0"))
        return AllowList(self.networks + everything, self.hosts, self.domains)


def _is_host_name(name: str) -> bool:
    labels = name.split(".")
    return 0 < len(name) <= 253 and all(
        0 < len(label) <= 63
        and not label.startswith("-")
        and not label.endswith("-")
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in label)
        for label in labels
    )
