"""Per-tenant limits over real HTTP (the API served by uvicorn, real Redis and databases): the request
rate (429 + Retry-After), the unfinished-jobs cap, the token budgets on every way in (single, bulk,
idempotent, OpenAI, batches), overrides per tenant, refunds when jobs end."""

from __future__ import annotations

import math
import secrets
import time
from typing import Any

import httpx
import redis

from shared.db import session_scope
from shared.quotas.budget import usage
from shared.quotas.tenant_limits import set_overrides
from tests.api.conftest import Rows, Serve
from tests.utils.batches import batch_line, jsonl
from tests.utils.factories import job_payload
from tests.utils.tenancy import auth_headers, make_key


def _tenant(name: str) -> str:
    return f"{name}-{secrets.token_hex(3)}"


def _client(url: str, database_url: str, tenant: str, **limits: Any) -> httpx.Client:
    """A client with a fresh key of `tenant`, whose overrides are `limits`."""
    if limits:
        with session_scope(database_url) as session:
            set_overrides(session, tenant, limits)
    headers = auth_headers(make_key(database_url, tenant))
    return httpx.Client(base_url=url, headers=headers, timeout=30)


def _generate(max_tokens: int) -> dict[str, Any]:
    return {"task": "generate", "input": {"prompt": "hello"}, "params": {"max_tokens": max_tokens}}


def test_past_its_requests_per_second_a_tenant_gets_429_with_retry_after(
    serve: Serve, database_url: str
) -> None:
    live = serve(auth_enabled="true", quota_requests_per_second="5")
    limited, other = _tenant("rate"), _tenant("calm")
    with (
        _client(live.url, database_url, limited) as client,
        _client(live.url, database_url, other) as calm,
        _client(live.url, database_url, _tenant("slow"), requests_per_second=2) as slow,
    ):
        started = time.monotonic()
        answers = [client.get("/v1/jobs") for _ in range(12)]
        elapsed = time.monotonic() - started
        ok = [a for a in answers if a.status_code == 200]
        refused = [a for a in answers if a.status_code == 429]
        assert len(ok) + len(refused) == len(answers)
        assert refused, "12 requests in a row at 5 per second were all let through"
        assert len(ok) <= 5 * math.ceil(elapsed + 1)
        retry = int(refused[0].headers["Retry-After"])
        assert 1 <= retry <= 1
        assert refused[0].json()["error"]["code"] == "rate_limited"
        assert calm.get("/v1/jobs").status_code == 200  # another tenant's budget is its own
        slow_answers = [slow.get("/v1/jobs").status_code for _ in range(4)]
        assert 429 in slow_answers  # the tenant's own override (2/s), not the default (5/s)
        time.sleep(retry + 0.1)
        assert client.get("/v1/jobs").status_code == 200  # after Retry-After it is let through again


def test_the_unfinished_jobs_cap_refuses_more_until_one_ends(
    serve: Serve, database_url: str, rows: Rows
) -> None:
    live = serve(auth_enabled="true", quota_max_queued_jobs="3")
    with _client(live.url, database_url, _tenant("queue")) as client:
        ids = [client.post("/v1/jobs", json=job_payload("sentiment")).json()["id"] for _ in range(3)]
        before = rows.count()
        over = client.post("/v1/jobs", json=job_payload("sentiment"))
        assert over.status_code == 429, over.text
        assert over.json()["error"]["code"] == "queue_limit_exceeded"
        assert int(over.headers["Retry-After"]) >= 1
        bulk = client.post("/v1/jobs/batch", json={"jobs": [job_payload("sentiment")] * 4})
        assert bulk.status_code == 422
        assert bulk.json()["error"]["code"] == "too_many_jobs"
        assert rows.count() == before  # nothing stored for a refusal
        assert client.post(f"/v1/jobs/{ids[0]}/cancel").status_code == 200  # ends: its place is free
        assert client.post("/v1/jobs", json=job_payload("sentiment")).status_code == 202
        assert client.post("/v1/jobs", json=job_payload("sentiment")).status_code == 429


def test_token_budget_on_every_way_in(serve: Serve, database_url: str, redis_url: str, rows: Rows) -> None:
    live = serve(auth_enabled="true")
    tenant = _tenant("tokens")
    broker = redis.Redis.from_url(redis_url)
    with _client(live.url, database_url, tenant, tokens_per_day=1000) as client:
        first = client.post("/v1/jobs", json=_generate(400))
        assert first.status_code == 202
        assert rows.get(first.json()["id"]).reserved_tokens == 400  # type: ignore[union-attr]
        # idempotent: the replay reserves nothing more
        key = {"Idempotency-Key": secrets.token_hex(8)}
        assert client.post("/v1/jobs", json=_generate(300), headers=key).status_code == 202
        assert client.post("/v1/jobs", json=_generate(300), headers=key).status_code == 200
        assert usage(broker, tenant).tokens_today == 700
        # bulk: all or nothing
        bulk = client.post("/v1/jobs/batch", json={"jobs": [_generate(100)] * 4})
        assert bulk.status_code == 429, bulk.text
        assert bulk.json()["error"]["code"] == "token_budget_exceeded"
        assert 1 <= int(bulk.headers["Retry-After"]) <= 86400
        assert usage(broker, tenant).tokens_today == 700
        assert client.post("/v1/jobs/batch", json={"jobs": [_generate(100)] * 3}).status_code == 202
        # classifier jobs spend no tokens
        assert client.post("/v1/jobs", json=job_payload("sentiment")).status_code == 202
        # a request larger than the whole budget can never fit: 422, not 429
        too_big = client.post("/v1/jobs", json=_generate(1001))
        assert too_big.status_code == 422
        assert too_big.json()["error"]["code"] == "token_budget_too_small"
        # the OpenAI endpoints reserve too, and keep Retry-After
        model = client.get("/v1/models").json()["data"][0]["id"]
        chat = client.post(
            "/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50},
        )
        assert chat.status_code == 429, chat.text
        assert int(chat.headers["Retry-After"]) >= 1
        # cancelling a queued job returns all it reserved
        assert client.post(f"/v1/jobs/{first.json()['id']}/cancel").status_code == 200
        assert usage(broker, tenant).tokens_today == 600
        mine = client.get("/v1/quotas").json()
        assert mine["tenant"] == tenant
        assert mine["limits"]["tokens_per_day"] == 1000
        assert mine["limits"]["requests_per_second"] is None
        assert mine["usage"]["tokens_today"] == 600
        assert mine["usage"]["unfinished_jobs"] == 5  # idempotent 1 + bulk 3 + sentiment 1 (first: canceled)
    broker.close()


def test_a_batch_takes_the_day_budget_only_all_or_nothing(
    serve: Serve, database_url: str, redis_url: str, rows: Rows
) -> None:
    live = serve(auth_enabled="true")
    tenant = _tenant("batch")
    broker = redis.Redis.from_url(redis_url)
    limits = {"tokens_per_day": 1000, "tokens_per_minute": 100, "max_queued_jobs": 1}
    with _client(live.url, database_url, tenant, **limits) as client:
        model = client.get("/v1/models").json()["data"][0]["id"]

        def create(n: int) -> httpx.Response:
            chat = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 300}
            lines = [batch_line(f"r{i}", "/v1/chat/completions", chat) for i in range(n)]
            upload = client.post(
                "/v1/files", files={"file": ("in.jsonl", jsonl(lines))}, data={"purpose": "batch"}
            )
            assert upload.status_code == 200, upload.text
            body = {
                "input_file_id": upload.json()["id"],
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            }
            return client.post("/v1/batches", json=body)

        assert create(3).status_code == 200  # 900 tokens: past the minute budget and the jobs cap, fine
        held = usage(broker, tenant)
        assert (held.open_jobs, held.tokens_today, held.tokens_this_minute) == (0, 900, 0)
        before = rows.count()
        refused = create(2)
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["Retry-After"]) >= 1
        assert rows.count() == before  # nothing of the refused batch was stored
        assert usage(broker, tenant).tokens_today == 900
    broker.close()
