"""Tenant isolation (issue 12, point 2), over real HTTP against the running API (`textfleet api`, keys
required) on real Redis and PostgreSQL, and SQLite.

The matrix: every endpoint that names a job, file or batch, asked by tenant A for its own object, for
tenant B's, and for one that does not exist. A gets its answer for its own; for B's it gets exactly
what it gets for a missing id (status and body, the id it asked for aside), B's object is left as it
was, and `?wait` on B's job returns at once like `?wait` on a missing id. Lists hold the caller's own
objects only, an admin key sees every tenant's, creation paths record the creator's tenant, and
Idempotency-Keys are per tenant. `test_the_matrix_covers_every_endpoint` keeps the matrix complete: a
new `/v1` route must be added to it (or to the routes that name no tenant's object).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from ulid import ULID

from api.app import create_app
from api.openai.service import INTERACTIVE_PRIORITY
from shared.tenancy.principal import Scope
from tests.utils.factories import job_payload
from tests.utils.isolation import (
    TenantObjects,
    delivery_status,
    idempotency_tenants,
    interactive_worker,
    make_objects,
    same_answer,
    tenant_of,
)
from tests.utils.live_api import LiveApi, live_api
from tests.utils.tenancy import auth_headers, make_key

#: A wait long enough that answering it late is unmistakable.
WAIT_S = 20


@dataclass(frozen=True)
class Probe:
    """One endpoint of the matrix: `{id}` in `path` (or in `body`) is the object asked for, of `kind`."""

    method: str
    path: str
    kind: str
    own: int  # the status tenant A gets for its own object
    body: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    template: str | None = None  # the route's path in the OpenAPI schema, where it is not `path`'s

    @property
    def route(self) -> tuple[str, str]:
        """(method, path) as the OpenAPI schema names the route."""
        name = {"jobs": "job_id", "files": "file_id", "batches": "batch_id"}[self.path.split("/")[2]]
        return self.method, self.template or self.path.replace("{id}", "{" + name + "}")


#: In order: later probes may rely on what earlier ones did to A's own objects (the cancel of A's job
#: makes it terminal, so A's own `?wait` answers at once).
MATRIX = [
    Probe("GET", "/v1/jobs/{id}", "job", 200),
    Probe("POST", "/v1/jobs/{id}/cancel", "job", 200),
    Probe("DELETE", "/v1/jobs/{id}", "job_erase", 200),
    Probe("GET", "/v1/jobs/{id}", "job", 200, params={"wait": WAIT_S}),
    Probe(
        "POST",
        "/v1/jobs/{id}/webhooks/completed/resend",
        "job_hook",
        202,
        template="/v1/jobs/{job_id}/webhooks/{event}/resend",
    ),
    Probe("GET", "/v1/files/{id}", "file", 200),
    Probe("GET", "/v1/files/{id}/content", "file", 200),
    Probe("GET", "/v1/files/{id}", "output_file", 200),
    Probe("GET", "/v1/files/{id}/content", "output_file", 200),
    Probe("POST", "/v1/batches", "file", 200, body={"input_file_id": "{id}", "endpoint": "/v1/moderations"}),
    Probe("DELETE", "/v1/files/{id}", "file_del", 200),
    Probe("GET", "/v1/batches/{id}", "batch", 200),
    Probe("POST", "/v1/batches/{id}/cancel", "batch", 200),
    Probe("POST", "/v1/batches/{id}/webhook/resend", "batch_hook", 202),
]

#: `/v1` routes that name no tenant's object, and where each one's scoping is tested.
UNNAMED = {
    ("POST", "/v1/jobs"): "test_every_creation_path_records_the_creators_tenant",
    ("POST", "/v1/jobs/batch"): "test_every_creation_path_records_the_creators_tenant",
    ("GET", "/v1/jobs"): "test_lists_hold_the_callers_own_and_an_admin_sees_every_tenant",
    ("POST", "/v1/files"): "test_the_matrix (make_objects: the uploader's tenant)",
    ("GET", "/v1/files"): "test_lists_hold_the_callers_own_and_an_admin_sees_every_tenant",
    ("GET", "/v1/batches"): "test_lists_hold_the_callers_own_and_an_admin_sees_every_tenant",
    ("GET", "/v1/queues"): "test_scopes (admin only)",
    ("GET", "/v1/queues/{queue}"): "test_scopes (fleet-wide counts, any key)",
    ("GET", "/v1/models"): "test_scopes (any key)",
    ("GET", "/v1/models/{model_id}"): "test_scopes (any key)",
    ("POST", "/v1/moderations"): "test_every_creation_path_records_the_creators_tenant",
    ("POST", "/v1/chat/completions"): "test_every_creation_path_records_the_creators_tenant",
    ("POST", "/v1/completions"): "test_every_creation_path_records_the_creators_tenant",
    ("GET", "/v1/quotas"): "tests/api/quotas (the caller's own tenant's limits, any key)",
    ("GET", "/v1/usage"): "tests/api/usage/test_usage.py (own tenant; ?tenant= admin only)",
    ("GET", "/v1/keys"): "tests/api/auth/test_keys_router.py (admin only)",
    ("POST", "/v1/keys"): "tests/api/auth/test_keys_router.py (admin only)",
    ("DELETE", "/v1/keys/{key}"): "tests/api/auth/test_keys_router.py (admin only)",
}


def _tenant(name: str) -> str:
    return f"{name}-{secrets.token_hex(4)}"


def _missing(kind: str) -> str:
    if kind in {"file", "file_del", "output_file"}:
        return f"file-{ULID()}"
    if kind in {"batch", "batch_hook"}:
        return f"batch_{ULID()}"
    return str(ULID())


def _ask(client: httpx.Client, probe: Probe, object_id: str, key: str) -> tuple[httpx.Response, float]:
    body = json.loads(json.dumps(probe.body).replace("{id}", object_id)) if probe.body else None
    started = time.monotonic()
    response = client.request(
        probe.method,
        probe.path.replace("{id}", object_id),
        json=body,
        params=probe.params,
        headers=auth_headers(key),
    )
    return response, time.monotonic() - started


Tenants = tuple[httpx.Client, TenantObjects, TenantObjects, str]


@pytest.fixture(scope="module")
def live(database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """The API served for real with keys required, shared by this module's tests (each makes tenants
    of its own, with fresh names)."""
    log_path = tmp_path_factory.mktemp("isolation") / "api.log"
    env = {"database_url": database_url, "redis_url": redis_url, "auth_enabled": "true"}
    with live_api(log_path, **env) as api:
        yield api


@pytest.fixture
def two_tenants(live: LiveApi, database_url: str) -> Iterator[Tenants]:
    """Tenants A and B, each with its objects, made through the live API; an admin key."""
    with httpx.Client(base_url=live.url, timeout=60) as client:
        a, b = (
            make_objects(client, database_url, tenant, make_key(database_url, tenant))
            for tenant in (_tenant("a"), _tenant("b"))
        )
        for made in (a, b):
            for kind in ("job", "file", "batch"):
                assert tenant_of(database_url, kind, made.ids[kind]) == made.tenant
        yield client, a, b, make_key(database_url, _tenant("ops"), [Scope.ADMIN])


def test_the_matrix(two_tenants: Tenants, database_url: str) -> None:
    client, a, b, _admin = two_tenants
    for probe in MATRIX:
        missing = _missing(probe.kind)
        own, _ = _ask(client, probe, a.ids[probe.kind], a.key)
        other, other_s = _ask(client, probe, b.ids[probe.kind], a.key)
        none, none_s = _ask(client, probe, missing, a.key)
        where = f"{probe.method} {probe.path} {probe.params or ''} ({probe.kind})"
        assert own.status_code == probe.own, f"{where}: own -> {own.status_code} {own.text}"
        assert other.status_code == 404, f"{where}: other tenant's -> {other.status_code} {other.text}"
        answer_other, answer_none = same_answer(other, b.ids[probe.kind], none, missing)
        assert answer_other == answer_none, where
        if probe.params:  # ?wait: another tenant's queued job answers at once, like a missing id
            assert other_s < WAIT_S / 4 and none_s < WAIT_S / 4, (where, other_s, none_s)

    # B's objects are as they were: nothing A asked for touched them.
    job = client.get(f"/v1/jobs/{b.ids['job']}", headers=b.headers).json()
    assert job["status"] == "queued"
    assert client.get(f"/v1/files/{b.ids['file_del']}", headers=b.headers).status_code == 200
    assert client.get(f"/v1/batches/{b.ids['batch']}", headers=b.headers).json()["status"] == "in_progress"
    assert delivery_status(database_url, job_id=b.ids["job_hook"]) == "failed"
    assert delivery_status(database_url, batch_id=b.ids["batch_hook"]) == "failed"
    # ... while A's own were changed by its requests.
    assert client.get(f"/v1/jobs/{a.ids['job']}", headers=a.headers).json()["status"] == "canceled"
    assert delivery_status(database_url, job_id=a.ids["job_hook"]) == "pending"
    assert client.get(f"/v1/files/{a.ids['file_del']}", headers=a.headers).status_code == 404


def test_an_admin_sees_every_tenants_objects(
    two_tenants: Tenants,
) -> None:
    client, _a, b, admin = two_tenants
    for probe in MATRIX:
        if probe.method != "GET" or probe.params:  # (B's job is queued: a wait would hold)
            continue
        response, _ = _ask(client, probe, b.ids[probe.kind], admin)
        assert response.status_code == 200, (probe, response.text)


def test_lists_hold_the_callers_own_and_an_admin_sees_every_tenant(
    two_tenants: Tenants,
) -> None:
    client, a, b, admin = two_tenants

    def listed(path: str, key: str, field: str) -> set[str]:
        response = client.get(path, headers=auth_headers(key), params={"limit": 100})
        assert response.status_code == 200, response.text
        return {item["id"] for item in response.json()[field]}

    for path, field, kinds in (
        ("/v1/jobs", "items", ("job", "job_erase", "job_hook")),
        ("/v1/files", "data", ("file", "file_del", "output_file")),
        ("/v1/batches", "data", ("batch", "batch_hook")),
    ):
        mine, theirs = {a.ids[k] for k in kinds}, {b.ids[k] for k in kinds}
        seen_by_a = listed(path, a.key, field)
        assert mine <= seen_by_a and not seen_by_a & theirs, path
        assert mine | theirs <= listed(path, admin, field), path
    # A's jobs list holds A's jobs only (its batches' jobs included), never another tenant's.
    jobs = client.get("/v1/jobs", headers=a.headers, params={"limit": 100}).json()["items"]
    assert len(jobs) == 3 + 2 * 2  # its two jobs, its hooked job, two batches of two requests


def test_scopes(two_tenants: Tenants, database_url: str) -> None:
    client, a, _b, admin = two_tenants
    reader = auth_headers(make_key(database_url, a.tenant, [Scope.JOBS_READ]))
    writer = auth_headers(make_key(database_url, a.tenant, [Scope.JOBS_WRITE]))
    assert client.get(f"/v1/jobs/{a.ids['job']}", headers=reader).status_code == 200
    assert client.post("/v1/jobs", json=job_payload("sentiment"), headers=reader).status_code == 403
    assert client.post(f"/v1/batches/{a.ids['batch']}/cancel", headers=reader).status_code == 403
    assert client.get(f"/v1/jobs/{a.ids['job']}", headers=writer).status_code == 403
    assert client.get("/v1/files", headers=writer).status_code == 403
    assert client.post("/v1/jobs", json=job_payload("sentiment"), headers=writer).status_code == 202
    # A wrong scope is a 403 whoever owns the object, so it tells nothing about it either.
    missing = client.get(f"/v1/jobs/{ULID()}", headers=writer)
    assert missing.status_code == 403
    # Queue depths: fleet-wide counts for any key; the worker list for admins.
    assert client.get("/v1/queues/classify", headers=reader).status_code == 200
    assert client.get("/v1/queues", headers=a.headers).status_code == 403
    assert client.get("/v1/queues", headers=auth_headers(admin)).status_code == 200
    assert client.get("/v1/models", headers=writer).status_code == 200


def test_every_creation_path_records_the_creators_tenant(
    live: LiveApi, database_url: str, redis_url: str
) -> None:
    tenants = [_tenant("a"), _tenant("b")]
    keys = {t: make_key(database_url, t) for t in tenants}

    async def concurrent_singles() -> list[tuple[str, str]]:
        """Single submissions of both tenants at once: the intake batcher stores them together."""
        async with httpx.AsyncClient(base_url=live.url, timeout=60) as aclient:

            async def one(tenant: str) -> tuple[str, str]:
                r = await aclient.post(
                    "/v1/jobs", json=job_payload("sentiment"), headers=auth_headers(keys[tenant])
                )
                assert r.status_code == 202, r.text
                return tenant, r.json()["id"]

            return await asyncio.gather(*(one(tenants[i % 2]) for i in range(40)))

    for tenant, job_id in asyncio.run(concurrent_singles()):
        assert tenant_of(database_url, "job", job_id) == tenant

    with httpx.Client(base_url=live.url, timeout=60) as client:
        a, b = (auth_headers(keys[t]) for t in tenants)
        bulk = client.post("/v1/jobs/batch", json={"jobs": [job_payload("sentiment")] * 3}, headers=a)
        assert bulk.status_code == 202
        assert {tenant_of(database_url, "job", j["id"]) for j in bulk.json()["items"]} == {tenants[0]}

        # Idempotency-Keys are per tenant: B's use of a key is invisible to A (no replay, no conflict).
        key = f"idem-{secrets.token_hex(4)}"
        first_b = client.post(
            "/v1/jobs", json=job_payload("sentiment"), headers={**b, "Idempotency-Key": key}
        )
        assert first_b.status_code == 202
        other_body = client.post("/v1/jobs", json=job_payload("risk"), headers={**a, "Idempotency-Key": key})
        assert other_body.status_code == 202  # not the 409 of a key reused with another body
        same = client.post(
            "/v1/jobs/batch", json={"jobs": [job_payload("moderate")]}, headers={**b, "Idempotency-Key": key}
        )
        assert same.status_code == 409  # B's own key, reused with another body: B's conflict
        same_a = client.post("/v1/jobs", json=job_payload("sentiment"), headers={**a, "Idempotency-Key": key})
        assert same_a.status_code == 409  # A's key now names A's risk job
        replay_b = client.post(
            "/v1/jobs", json=job_payload("sentiment"), headers={**b, "Idempotency-Key": key}
        )
        assert replay_b.status_code == 200 and replay_b.json()["id"] == first_b.json()["id"]
        assert tenant_of(database_url, "job", other_body.json()["id"]) == tenants[0]
        assert idempotency_tenants(database_url, key) == sorted(tenants)

        # The OpenAI endpoints' jobs are the caller's (a stand-in worker finishes them).
        model = client.get("/v1/models", headers=a).json()["data"][0]["id"]
        with interactive_worker(database_url, redis_url, INTERACTIVE_PRIORITY):
            moderation = client.post("/v1/moderations", json={"input": ["one", "two"]}, headers=a)
            chat = client.post(
                "/v1/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": "Hi"}]},
                headers=a,
            )
            completion = client.post("/v1/completions", json={"model": model, "prompt": "Hi"}, headers=a)
            with client.stream(
                "POST",
                "/v1/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": "Hi"}], "stream": True},
                headers=a,
            ) as stream:
                assert stream.status_code == 200
                chunks = [line for line in stream.iter_lines() if line.startswith("data: {")]
        created = {
            moderation.json()["id"].removeprefix("modr-"),
            chat.json()["id"].removeprefix("chatcmpl-"),
            completion.json()["id"].removeprefix("cmpl-"),
            json.loads(chunks[0].removeprefix("data: "))["id"].removeprefix("chatcmpl-"),
        }
        for job_id in created:
            assert tenant_of(database_url, "job", job_id) == tenants[0]
            assert client.get(f"/v1/jobs/{job_id}", headers=a).status_code == 200
            assert client.get(f"/v1/jobs/{job_id}", headers=b).status_code == 404

        # An admin's own jobs are its own tenant's.
        ops = _tenant("ops")
        admin_job = client.post(
            "/v1/jobs",
            json=job_payload("sentiment"),
            headers=auth_headers(make_key(database_url, ops, [Scope.ADMIN])),
        )
        assert tenant_of(database_url, "job", admin_job.json()["id"]) == ops


def test_the_matrix_covers_every_endpoint() -> None:
    """Every `/v1` operation of the app is in the matrix or names no tenant's object (listed above)."""
    schema = create_app().openapi()
    operations = {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        if path.startswith("/v1/")
        for method in item
    }
    covered = {probe.route for probe in MATRIX} | set(UNNAMED)
    assert operations - covered == set(), "add these routes to the isolation matrix"
    assert covered - operations == set(), "the matrix names routes the app does not have"
