"""Webhook destinations are checked at submission: a job's, a job batch's, a batch's and a batch
file's lines' webhook URLs that resolve to a non-public address get a clear `4xx` naming the field and
the problem, and nothing is stored (names resolved through a resolver the test controls)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from shared.db.batch_models import Batch
from shared.db.session import session_scope
from shared.webhooks import policy
from tests.api.conftest import Broker, MakeClient, Rows
from tests.utils.batches import batch_line, jsonl, moderation_lines
from tests.utils.factories import job_payload
from tests.utils.webhooks import SECRET

ANSWERS = {
    "public.partner.test": ["93.184.216.34"],
    "lan.partner.test": ["192.168.10.20"],
    "meta.partner.test": ["169.254.169.254"],
    "cgnat.partner.test": ["100.64.0.9"],
    "v6.partner.test": ["fd12::1"],
}


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> None:
    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if host not in ANSWERS:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        out: list[tuple[Any, ...]] = []
        for address in ANSWERS[host]:
            if ":" in address:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return out

    monkeypatch.setattr(policy, "getaddrinfo", getaddrinfo)


@pytest.fixture
def api(make_client: MakeClient) -> TestClient:
    """Webhooks on, no allow-list (the suite's placeholder names are not allowed here)."""
    return make_client(webhook_secret=SECRET, webhook_allow="")


REFUSED = [
    ("http://127.0.0.1:8080/hook", "webhook address 127.0.0.1 is a loopback address"),
    ("http://[::1]/hook", "webhook address ::1 is a loopback address"),
    ("http://[::ffff:10.1.1.1]/hook", "IPv4-mapped IPv6 address of 10.1.1.1, a private address"),
    ("http://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
    ("http://[fd00:ec2::254]/", "a cloud metadata address"),
    ("https://lan.partner.test/hook", "webhook host lan.partner.test resolves to 192.168.10.20, a private"),
    ("https://meta.partner.test/hook", "resolves to 169.254.169.254, a cloud metadata address"),
    ("https://cgnat.partner.test/hook", "CGNAT"),
    ("https://v6.partner.test/hook", "resolves to fd12::1, a private (unique local) address"),
    ("https://nowhere.partner.test/hook", "webhook host nowhere.partner.test does not resolve"),
    ("http://0.0.0.0:9000/", "the unspecified address"),
    ("http://224.0.0.1/", "a multicast address"),
]


@pytest.mark.parametrize(("url", "words"), REFUSED)
def test_a_job_with_an_unsafe_webhook_is_refused(
    url: str, words: str, api: TestClient, rows: Rows, broker: Broker
) -> None:
    response = api.post("/v1/jobs", json=job_payload(webhook=url))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "webhook" and error["code"] == "unsafe_webhook_url"
    assert words in error["message"] and error["message"].startswith("webhook: ")
    assert rows.count() == 0 and broker.messages() == []


def test_a_job_batch_names_the_item(api: TestClient, rows: Rows, broker: Broker) -> None:
    jobs = [
        job_payload(webhook="https://public.partner.test/a"),
        job_payload(),
        job_payload(webhook="https://lan.partner.test/c"),
    ]
    response = api.post("/v1/jobs/batch", json={"jobs": jobs})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "jobs.2.webhook" and "192.168.10.20, a private address" in error["message"]
    assert rows.count() == 0 and broker.messages() == []

    jobs[2] = job_payload(webhook="https://public.partner.test/c")
    assert api.post("/v1/jobs/batch", json={"jobs": jobs}).status_code == 202
    assert rows.count() == 3


def test_public_and_allow_listed_destinations_are_accepted(make_client: MakeClient, rows: Rows) -> None:
    api = make_client(webhook_secret=SECRET, webhook_allow="127.0.0.1,lan.partner.test,100.64.0.0/10")
    for url in (
        "https://public.partner.test/hook",
        "http://127.0.0.1:8080/hook",
        "https://lan.partner.test/x",
        "https://cgnat.partner.test/y",
    ):
        response = api.post("/v1/jobs", json=job_payload(webhook=url))
        assert response.status_code == 202, (url, response.text)
    # an allow-listed network does not admit a metadata address inside it
    api = make_client(webhook_secret=SECRET, webhook_allow="169.254.0.0/16")
    response = api.post("/v1/jobs", json=job_payload(webhook="http://169.254.169.254/"))
    assert response.status_code == 422 and "names that very address" in response.json()["error"]["message"]
    assert rows.count() == 4


def _batches(database_url: str) -> int:
    with session_scope(database_url) as session:
        return int(session.scalar(select(func.count()).select_from(Batch)) or 0)


def _post_batch(api: TestClient, lines: list[dict[str, Any] | str], endpoint: str, **extra: Any) -> Any:
    uploaded = api.post("/v1/files", files={"file": ("in.jsonl", jsonl(lines))}, data={"purpose": "batch"})
    assert uploaded.status_code == 200, uploaded.text
    return api.post(
        "/v1/batches", json={"input_file_id": uploaded.json()["id"], "endpoint": endpoint, **extra}
    )


def test_a_batch_webhook_is_checked(api: TestClient, database_url: str) -> None:
    before = _batches(database_url)
    response = _post_batch(api, moderation_lines(1), "/v1/moderations", webhook="https://meta.partner.test/b")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "webhook" and "cloud metadata" in error["message"]
    assert _batches(database_url) == before
    ok = _post_batch(api, moderation_lines(1), "/v1/moderations", webhook="https://public.partner.test/b")
    assert ok.status_code == 200 and ok.json()["status"] == "in_progress"


def test_a_batch_line_webhook_is_checked(api: TestClient, rows: Rows) -> None:
    lines: list[dict[str, Any] | str] = [
        batch_line("a", "/v1/jobs", job_payload(webhook="https://public.partner.test/a")),
        batch_line("b", "/v1/jobs", job_payload(webhook="http://10.0.0.1/b")),
    ]
    response = _post_batch(api, lines, "/v1/jobs")
    assert response.status_code == 200, response.text
    batch = response.json()
    assert batch["status"] == "failed"
    (error,) = batch["errors"]["data"]
    assert error["line"] == 2 and error["param"] == "body.webhook"
    assert "webhook address 10.0.0.1 is a private address" in error["message"]
    assert rows.count() == 0  # nothing of it runs
