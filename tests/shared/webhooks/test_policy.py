"""`shared.webhooks.policy` and `addresses`: which webhook destinations are refused and why, the
allow-list, and lookups through a resolver the test controls (no real DNS)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from shared.errors import InvalidInputError
from shared.webhooks import policy
from shared.webhooks.addresses import AllowList, non_public_reason, parse_address
from shared.webhooks.destinations import check_webhook_urls, url_problems
from shared.webhooks.policy import UnsafeWebhookURLError, check_url_scheme, is_public_address, vet_destination
from shared.webhooks.settings import WebhookSafetySettings

Resolver = Callable[..., list[tuple[Any, ...]]]

#: One address of each class a webhook must not reach, with the words its refusal uses.
REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("10.1.2.3", "a private address"),
    ("172.16.0.1", "a private address"),
    ("192.168.1.1", "a private address"),
    ("169.254.1.1", "link-local"),
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.254", "CGNAT"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.170.2", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("192.0.0.192", "cloud metadata"),
    ("168.63.129.16", "cloud metadata"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("192.0.2.1", "special-purpose"),  # documentation
    ("198.18.0.1", "special-purpose"),  # benchmarking
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("fd00:ec2::254", "cloud metadata"),
    ("fd00:ec2::23", "cloud metadata"),
    ("::ffff:127.0.0.1", "IPv4-mapped IPv6 address of 127.0.0.1, a loopback"),
    ("::ffff:10.0.0.1", "IPv4-mapped IPv6 address of 10.0.0.1, a private"),
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("::ffff:100.64.0.1", "CGNAT"),
    ("64:ff9b::7f00:1", "NAT64 address of 127.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "cloud metadata"),
    ("2002:7f00:1::1", "6to4 address of 127.0.0.1"),
    ("::7f00:1", "IPv4-compatible"),
    ("2001:db8::1", "special-purpose"),  # documentation
    ("64:ff9b:1::1", "local-use NAT64"),
]

PUBLIC = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "64:ff9b::808:808",
]


@pytest.mark.parametrize(("address", "words"), REFUSED)
def test_each_non_public_class_is_refused_by_name(address: str, words: str) -> None:
    ip = parse_address(address)
    assert ip is not None
    reason = non_public_reason(ip)
    assert reason is not None and words in reason
    assert is_public_address(address) is False
    with pytest.raises(UnsafeWebhookURLError, match=f"webhook address .* is .*{words}"):
        vet_destination(f"http://{_host(address)}:8080/hook", AllowList())


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert is_public_address(address)
    destination = vet_destination(f"https://{_host(address)}/hook", AllowList())
    assert [str(a) for a in destination.addresses] == [str(parse_address(address))]
    assert destination.port == 443


def _host(address: str) -> str:
    return f"[{address.replace('%', '%25')}]" if ":" in address else address


def test_only_http_and_https_urls_with_a_host() -> None:
    assert check_url_scheme("https://example.com/x") == ("https", "example.com", 443)
    assert check_url_scheme("http://example.com:8080/x") == ("http", "example.com", 8080)
    for bad in ("ftp://example.com/", "file:///etc/passwd", "example.com", "http:///nohost", "gopher://h/"):
        with pytest.raises(UnsafeWebhookURLError):
            check_url_scheme(bad)


def _resolver(answers: dict[str, list[str]], calls: list[str] | None = None) -> Resolver:
    """A getaddrinfo that knows only `answers` (name -> addresses)."""

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if calls is not None:
            calls.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        out: list[tuple[Any, ...]] = []
        for address in answers[host]:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
            out.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
        return out

    return getaddrinfo


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """The answers of the policy's resolver for this test (fill the dict)."""
    answers: dict[str, list[str]] = {}
    monkeypatch.setattr(policy, "getaddrinfo", _resolver(answers))
    return answers


def test_names_are_judged_by_every_address_they_resolve_to(dns: dict[str, list[str]]) -> None:
    dns["public.test"] = ["93.184.216.34", "2606:4700:4700::1111"]
    dns["private.test"] = ["10.0.0.7"]
    dns["mixed.test"] = ["93.184.216.34", "192.168.0.10"]  # either may be used: refused
    dns["mapped.test"] = ["::ffff:127.0.0.1"]
    dns["metadata.test"] = ["169.254.169.254"]
    dns["cgnat.test"] = ["100.64.1.1"]

    assert len(vet_destination("https://public.test/h", AllowList()).addresses) == 2
    for name, words in [
        ("private.test", "resolves to 10.0.0.7, a private address"),
        ("mixed.test", "resolves to 192.168.0.10, a private address"),
        ("mapped.test", "IPv4-mapped IPv6 address of 127.0.0.1, a loopback address"),
        ("metadata.test", "resolves to 169.254.169.254, a cloud metadata address"),
        ("cgnat.test", "CGNAT"),
    ]:
        with pytest.raises(UnsafeWebhookURLError, match=words):
            vet_destination(f"https://{name}/h", AllowList())
    with pytest.raises(socket.gaierror):
        vet_destination("https://nowhere.test/h", AllowList())


def test_the_allow_list_admits_named_hosts_and_networks_but_not_metadata(dns: dict[str, list[str]]) -> None:
    dns["receiver.internal"] = ["10.1.2.3"]
    dns["svc.cluster.test"] = ["10.9.9.9"]
    dns["a.svc.cluster.test"] = ["10.9.9.9"]
    dns["lab.test"] = ["192.168.5.5"]
    dns["sneaky.internal"] = ["169.254.169.254"]
    allowed = AllowList.parse(
        ["receiver.internal", "*.svc.cluster.test", "192.168.0.0/16", "::1", "169.254.0.0/16"]
    )

    assert vet_destination("http://receiver.internal/h", allowed).addresses
    assert vet_destination("http://a.svc.cluster.test/h", allowed).addresses
    assert vet_destination("http://lab.test/h", allowed).addresses
    assert vet_destination("http://[::1]:9000/h", allowed).addresses
    assert vet_destination("http://[::ffff:192.168.1.1]/h", allowed).addresses  # mapped: its IPv4 network
    assert vet_destination("http://169.254.1.1/h", allowed).addresses  # link-local network allowed
    with pytest.raises(UnsafeWebhookURLError, match="a private address"):
        vet_destination("http://svc.cluster.test/h", allowed)  # `*.d` is not `d` itself
    with pytest.raises(UnsafeWebhookURLError, match="loopback"):
        vet_destination("http://127.0.0.1/h", allowed)
    # metadata: not by the network around it, not by an allowed name, only by the address itself
    with pytest.raises(UnsafeWebhookURLError, match="names that very address"):
        vet_destination("http://169.254.169.254/latest/meta-data/", allowed)
    with pytest.raises(UnsafeWebhookURLError, match="cloud metadata"):
        vet_destination("http://sneaky.internal/h", AllowList.parse(["sneaky.internal"]))
    exact = AllowList.parse(["169.254.169.254"])
    assert vet_destination("http://169.254.169.254/h", exact).addresses
    assert vet_destination("http://[::ffff:169.254.169.254]/h", exact).addresses


def test_the_legacy_allow_private_allows_every_network_but_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTFLEET_WEBHOOK_ALLOW_PRIVATE", "true")
    monkeypatch.delenv("TEXTFLEET_WEBHOOK_ALLOW", raising=False)
    allowed = WebhookSafetySettings().allow_list
    for url in ("http://127.0.0.1/h", "http://10.0.0.1/h", "http://[fd00::1]/h", "http://100.64.0.1/h"):
        assert vet_destination(url, allowed).addresses
    for url in ("http://169.254.169.254/h", "http://[fd00:ec2::254]/h"):
        with pytest.raises(UnsafeWebhookURLError, match="cloud metadata"):
            vet_destination(url, allowed)


def test_the_allow_list_setting_parses_and_names_a_bad_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTFLEET_WEBHOOK_ALLOW", " 10.0.0.0/8, receiver.internal ,*.svc.local,[::1]")
    settings = WebhookSafetySettings()
    assert settings.webhook_allow == ["10.0.0.0/8", "receiver.internal", "*.svc.local", "[::1]"]
    allowed = settings.allow_list
    assert allowed.allows_host("Receiver.Internal.") and allowed.allows_host("x.svc.local")
    monkeypatch.setenv("TEXTFLEET_WEBHOOK_ALLOW", '["127.0.0.1", "hooks.local"]')
    assert WebhookSafetySettings().webhook_allow == ["127.0.0.1", "hooks.local"]
    for bad in ("10.0.0.0/33", "http://x.test/", "bad host", "*."):
        monkeypatch.setenv("TEXTFLEET_WEBHOOK_ALLOW", bad)
        with pytest.raises(ValidationError, match="allow-list entry"):
            WebhookSafetySettings()


def test_a_submission_names_the_field_and_the_problem(dns: dict[str, list[str]]) -> None:
    dns["ok.test"] = ["93.184.216.34"]
    dns["lan.test"] = ["192.168.1.20"]
    settings = WebhookSafetySettings(webhook_allow=[])
    check_webhook_urls([("webhook", "https://ok.test/h")], settings)  # no error
    with pytest.raises(InvalidInputError) as caught:
        check_webhook_urls(
            [("jobs.0.webhook", "https://ok.test/h"), ("jobs.1.webhook", "http://lan.test/")], settings
        )
    assert caught.value.field == "jobs.1.webhook"
    assert caught.value.code == "unsafe_webhook_url"
    assert (
        "jobs.1.webhook: webhook host lan.test resolves to 192.168.1.20, a private address"
        in caught.value.message
    )
    problems = url_problems(["https://nowhere.test/x", "http://[::1]/", "https://ok.test/h"], settings)
    assert set(problems) == {"https://nowhere.test/x", "http://[::1]/"}
    assert "does not resolve" in problems["https://nowhere.test/x"]


def test_a_submission_does_not_look_up_allow_listed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(policy, "getaddrinfo", _resolver({}, calls))
    settings = WebhookSafetySettings(webhook_allow=["*.example.com"])
    assert url_problems(["https://hooks.example.com/x"], settings) == {}
    assert calls == []


def test_each_host_is_looked_up_once_and_slow_dns_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    fast = _resolver({"a.test": ["93.184.216.34"], "b.test": ["8.8.8.8"]}, calls)

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if host == "slow.test":
            time.sleep(1.5)
        return fast(host, port, *args, **kwargs)

    monkeypatch.setattr(policy, "getaddrinfo", getaddrinfo)
    settings = WebhookSafetySettings(webhook_allow=[], webhook_dns_timeout_s=0.3)
    urls = [f"https://{h}.test/{i}" for i in range(3) for h in ("a", "b")]
    assert url_problems(urls + urls, settings) == {}
    assert sorted(calls) == ["a.test", "b.test"]  # once per host, however many URLs name it
    started = time.monotonic()
    problems = url_problems(["https://slow.test/x", "https://a.test/0"], settings)
    assert time.monotonic() - started < 1.2
    assert problems == {"https://slow.test/x": "webhook host slow.test did not resolve within 0.3 s"}


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1", "017700000001", "[0:0:0:0:0:ffff:7f00:1]"])
def test_other_spellings_of_loopback_are_refused(host: str) -> None:
    """Numeric forms the system resolver turns into 127.0.0.1 (no DNS involved) are judged by the
    address they resolve to."""
    with pytest.raises(UnsafeWebhookURLError, match=r"127\.0\.0\.1, a loopback address"):
        vet_destination(f"http://{host}/hook", AllowList())
