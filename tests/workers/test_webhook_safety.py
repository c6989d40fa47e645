"""Webhook destination safety on delivery: real HTTP to a local receiver (allowed by the allow-list),
refusals checked again on every attempt (names resolved through a resolver the test controls), the
connection made to the address that was checked, redirects never followed."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
import redis

from shared.webhooks import policy
from shared.webhooks import queue as wq
from shared.webhooks.addresses import AllowList
from shared.webhooks.policy import UnsafeWebhookURLError
from tests.utils.receiver import WebhookReceiver
from tests.utils.webhooks import MakeSettings, deliver_due, load_delivery, make_due, pending_delivery, verify
from workers.webhooks.http import Destinations


class Dns:
    """The answers of the policy's resolver: name -> addresses (change them between attempts)."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.calls: list[str] = []

    def getaddrinfo(self, host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        self.calls.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in self.answers[host]]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Dns:
    resolver = Dns()
    monkeypatch.setattr(policy, "getaddrinfo", resolver.getaddrinfo)
    return resolver


def _safe(make_settings: MakeSettings, allow: str = "", **overrides: Any) -> Any:
    """Settings with the address policy on (no legacy allow-everything) and this allow-list."""
    values: dict[str, Any] = {
        "webhook_allow_private": False,
        "webhook_allow": allow,
        "webhook_dns_cache_s": 0,
    }
    return make_settings(**{**values, **overrides})


def test_an_allow_listed_receiver_gets_signed_deliveries_over_real_http(
    database_url: str, make_settings: MakeSettings, receiver: WebhookReceiver, webhook_redis: redis.Redis
) -> None:
    _, delivery_id = pending_delivery(database_url, receiver.url(), client=webhook_redis)
    deliver_due(_safe(make_settings, "127.0.0.0/8"), webhook_redis)
    assert load_delivery(database_url, delivery_id).status == "delivered"
    (request,) = receiver.received()
    assert verify(request)["type"] == "job.completed"


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ("127.0.0.1", "a loopback address"),
        ("10.0.0.8", "a private address"),
        ("169.254.7.7", "a link-local address"),
        ("100.64.3.3", "a shared (CGNAT, 100.64.0.0/10) address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("0.0.0.0", "the unspecified address"),
        ("224.0.0.251", "a multicast address"),
        ("240.1.1.1", "a reserved address"),
    ],
)
def test_a_name_resolving_to_a_refused_address_fails_without_a_request(
    answer: str,
    words: str,
    dns: Dns,
    database_url: str,
    make_settings: MakeSettings,
    receiver: WebhookReceiver,
    webhook_redis: redis.Redis,
) -> None:
    dns.answers["hooks.partner.test"] = [answer]
    url = f"http://hooks.partner.test:{receiver.port}/hook"
    _, delivery_id = pending_delivery(database_url, url, client=webhook_redis)

    deliver_due(_safe(make_settings), webhook_redis)

    row = load_delivery(database_url, delivery_id)
    assert (row.status, row.attempts, row.last_status_code) == ("failed", 1, None)  # refused: not retried
    assert row.last_error is not None
    assert f"webhook host hooks.partner.test resolves to {answer}, {words}" in row.last_error
    assert receiver.received() == []
    assert wq.pending_counts(webhook_redis) == (0, 0)


@pytest.mark.parametrize("host", ["127.0.0.1", "[::ffff:127.0.0.1]", "localhost"])
def test_loopback_literals_and_names_are_refused_unless_allowed(
    host: str,
    database_url: str,
    make_settings: MakeSettings,
    receiver: WebhookReceiver,
    webhook_redis: redis.Redis,
) -> None:
    url = f"http://{host}:{receiver.port}/hook"
    _, refused_id = pending_delivery(database_url, url, client=webhook_redis)
    deliver_due(_safe(make_settings), webhook_redis)
    refused = load_delivery(database_url, refused_id)
    assert refused.status == "failed" and "loopback" in (refused.last_error or "")
    assert receiver.received() == []

    if host == "[::ffff:127.0.0.1]":  # judged as its IPv4 address; not connectable as such here
        return
    _, allowed_id = pending_delivery(database_url, url, client=webhook_redis)
    deliver_due(_safe(make_settings, "127.0.0.1,localhost"), webhook_redis)
    assert load_delivery(database_url, allowed_id).status == "delivered"
    assert len(receiver.received()) == 1


def test_every_attempt_checks_again_and_connects_to_the_checked_address(
    dns: Dns,
    database_url: str,
    make_settings: MakeSettings,
    receiver: WebhookReceiver,
    webhook_redis: redis.Redis,
) -> None:
    """DNS rebinding: the name answered an allowed address for the first attempt, a private one for
    the retry. The retry is refused before any connection; the first attempt went to the checked
    address (the system resolver does not know the name at all) with the name kept in `Host`."""
    settings = _safe(make_settings, "127.0.0.1")
    receiver.fail_first = 1
    dns.answers["hooks.rebind.test"] = ["127.0.0.1"]
    url = f"http://hooks.rebind.test:{receiver.port}/hook"
    _, delivery_id = pending_delivery(database_url, url, client=webhook_redis)

    deliver_due(settings, webhook_redis)
    row = load_delivery(database_url, delivery_id)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 500)
    (request,) = receiver.received()
    assert request.headers["host"] == f"hooks.rebind.test:{receiver.port}"
    verify(request)

    dns.answers["hooks.rebind.test"] = ["192.168.77.1"]
    make_due(database_url, webhook_redis, delivery_id)
    deliver_due(settings, webhook_redis)
    row = load_delivery(database_url, delivery_id)
    assert (row.status, row.attempts) == ("failed", 2)
    assert "resolves to 192.168.77.1, a private address" in (row.last_error or "")
    assert len(receiver.received()) == 1  # no second request
    assert dns.calls == ["hooks.rebind.test", "hooks.rebind.test"]  # looked up for each attempt


def test_a_name_that_does_not_resolve_is_retried(
    dns: Dns, database_url: str, make_settings: MakeSettings, webhook_redis: redis.Redis
) -> None:
    _, delivery_id = pending_delivery(database_url, "https://gone.partner.test/hook", client=webhook_redis)
    deliver_due(_safe(make_settings), webhook_redis)
    row = load_delivery(database_url, delivery_id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "cannot resolve webhook host" in (row.last_error or "")


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "other-receiver"])
def test_redirects_are_never_followed(
    target: str,
    database_url: str,
    make_settings: MakeSettings,
    receiver: WebhookReceiver,
    webhook_redis: redis.Redis,
) -> None:
    with WebhookReceiver() as other:
        receiver.redirect_to = other.url("/moved") if target == "other-receiver" else target
        _, delivery_id = pending_delivery(database_url, receiver.url(), client=webhook_redis)

        deliver_due(_safe(make_settings, "127.0.0.1"), webhook_redis)

        row = load_delivery(database_url, delivery_id)
        assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 302)  # a failed attempt
        assert "redirects are not followed" in (row.last_error or "")
        assert [r.path for r in receiver.received()] == ["/hook"]
        assert other.received() == []


def test_lookups_are_shared_and_cached_but_every_use_is_checked(
    dns: Dns, make_settings: MakeSettings
) -> None:
    destinations = Destinations(_safe(make_settings, "127.0.0.1,::1", webhook_dns_cache_s=60))
    dns.answers["hooks.cache.test"] = ["127.0.0.1"]

    async def resolve_all(urls: list[str]) -> list[tuple[str, dict[str, str], str | None]]:
        return await asyncio.gather(*(destinations.resolve(url) for url in urls))

    results = asyncio.run(resolve_all([f"http://hooks.cache.test:81/{i}" for i in range(5)]))
    assert dns.calls == ["hooks.cache.test"]  # one lookup for five concurrent attempts
    assert [r[0] for r in results] == [f"http://127.0.0.1:81/{i}" for i in range(5)]
    assert {(tuple(r[1].items()), r[2]) for r in results} == {((("host", "hooks.cache.test:81"),), None)}
    (https,) = asyncio.run(resolve_all(["https://hooks.cache.test/x"]))
    assert https == ("https://127.0.0.1/x", {"host": "hooks.cache.test"}, "hooks.cache.test")  # SNI kept

    destinations.allowed = AllowList()  # the cached answer is judged again on each use
    with pytest.raises(UnsafeWebhookURLError, match="loopback"):
        asyncio.run(resolve_all(["http://hooks.cache.test:81/again"]))
    assert dns.calls == ["hooks.cache.test", "hooks.cache.test"]  # port 443 is its own entry; 81 cached

    dns.answers["v6.cache.test"] = ["::1"]
    destinations.allowed = AllowList.parse(["::1"])
    (v6,) = asyncio.run(resolve_all(["http://v6.cache.test:8080/h"]))
    assert v6[0] == "http://[::1]:8080/h" and v6[1] == {"host": "v6.cache.test:8080"}
