"""Poison at the door: NUL, lone surrogates, NaN and Infinity are refused with a 422 naming the field,
before anything is stored or enqueued; good neighbours racing them are never failed; and no payload
of any refused request reaches the API's log, in either renderer."""

from __future__ import annotations

import json
import random
import secrets
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import DataError

from shared.db.models import Job
from shared.db.session import session_scope
from tests.api.conftest import Broker, MakeClient, Rows, Serve
from tests.utils.factories import add_jobs, job_row
from tests.utils.poison import Poison, poisons

MARKER = "MRK" + secrets.token_hex(8)
POISONS = poisons(MARKER)
JSON_HEADERS = {"content-type": "application/json"}


def insert_rows(database_url: str, *jobs: Job) -> None:
    with session_scope(database_url) as session:
        add_jobs(session, jobs)


@pytest.mark.parametrize("poison", POISONS, ids=[p.name for p in POISONS])
def test_poison_is_refused_naming_the_field_and_stores_nothing(
    make_client: MakeClient, rows: Rows, broker: Broker, poison: Poison
) -> None:
    api = make_client(webhook_secret="whsec_" + "A" * 32)
    response = api.post(f"/v1/jobs{poison.path}", content=poison.body, headers=JSON_HEADERS)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["field"] == poison.field
    assert error["message"].startswith(f"{poison.field}: ")
    assert MARKER not in response.text  # the rule, never the value
    assert rows.count() == 0
    assert broker.messages() == []


def test_idempotency_key_with_control_characters_is_refused(api: TestClient, rows: Rows) -> None:
    response = api.post(
        "/v1/jobs",
        json={"task": "sentiment", "input": {"text": "hi"}},
        headers={"Idempotency-Key": "key\x01with-a-control"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "Idempotency-Key"
    assert rows.count() == 0


def test_deeply_nested_metadata_is_a_4xx_not_a_crash(api: TestClient, rows: Rows) -> None:
    depth = 900  # below the JSON parser's own limit, far above any validator recursion budget
    nested = "[" * depth + '"\\u0000"' + "]" * depth
    body = f'{{"task": "sentiment", "input": {{"text": "hi"}}, "metadata": {{"k": {nested}}}}}'
    response = api.post("/v1/jobs", content=body.encode(), headers=JSON_HEADERS)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "metadata.k" + ".0" * depth
    assert rows.count() == 0


def _submit_all(url: str, requests: list[tuple[str, bytes]]) -> list[httpx.Response]:
    with (
        httpx.Client(base_url=url, timeout=30, limits=httpx.Limits(max_connections=64)) as client,
        ThreadPoolExecutor(max_workers=32) as pool,
    ):
        return list(
            pool.map(
                lambda req: client.post(f"/v1/jobs{req[0]}", content=req[1], headers=JSON_HEADERS), requests
            )
        )


def test_good_submissions_racing_every_poison_all_succeed_and_only_they_are_stored(
    serve: Serve, rows: Rows, broker: Broker
) -> None:
    """Real HTTP, concurrent: good single submissions share group commits with the poisoned ones."""
    live = serve(log_format="json", webhook_secret="whsec_" + "A" * 32)
    good_ids: set[str] = set()
    for round_ in range(3):
        good = [
            ("", json.dumps({"task": "sentiment", "input": {"text": f"good {round_}.{i}"}}).encode())
            for i in range(60)
        ]
        bad = [(p.path, p.body) for p in POISONS]
        requests = good + bad
        random.Random(round_).shuffle(requests)

        responses = _submit_all(live.url, requests)

        for (path, body), response in zip(requests, responses, strict=True):
            if (path, body) in bad:
                assert response.status_code == 422, (body, response.text)
            else:
                assert response.status_code == 202, (body, response.text)
                good_ids.add(response.json()["id"])
    assert len(good_ids) == 180
    assert rows.count() == 180
    assert set(broker.jobs()) == good_ids
    with httpx.Client(base_url=live.url, timeout=30) as client:  # every stored job can be read back
        listed = client.get("/v1/jobs", params={"limit": 200})
        assert listed.status_code == 200
        assert {job["id"] for job in listed.json()["items"]} == good_ids
    log = live.log()
    assert '"job.created"' in log  # the log is being written...
    assert MARKER not in log  # ...and no refused payload is in it


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_no_payload_of_a_failing_request_reaches_the_log(serve: Serve, rows: Rows, log_format: str) -> None:
    live = serve(log_format=log_format, log_level="DEBUG")
    with httpx.Client(base_url=live.url, timeout=30) as client:
        for poison in POISONS:
            response = client.post(f"/v1/jobs{poison.path}", content=poison.body, headers=JSON_HEADERS)
            assert 400 <= response.status_code < 500, (poison.name, response.text)
        webhook_off = client.post(  # webhooks are off here: another refusal path
            "/v1/jobs",
            json={"task": "sentiment", "input": {"text": MARKER}, "webhook": "https://example.com/"},
        )
        assert webhook_off.status_code == 422
        too_long = client.post("/v1/jobs", json={"task": "sentiment", "input": {"text": MARKER * 5000}})
        assert too_long.status_code == 422
        unknown = client.get(f"/v1/jobs/{MARKER}")
        assert unknown.status_code == 404 and MARKER not in unknown.text
        queue = client.get(f"/v1/queues/{MARKER}")
        assert queue.status_code == 404 and MARKER not in queue.text
        assert (
            client.post("/v1/jobs", json={"task": "sentiment", "input": {"text": "fine"}}).status_code == 202
        )
    assert rows.count() == 1
    log = live.log()
    assert "job.created" in log
    assert MARKER not in log


@pytest.mark.parametrize(
    "raw",
    [
        b'{"task": "sentiment", "input": {"text": "\xff\xfe"}}',  # not UTF-8
        b'{"task": "sentiment", "input": {"text": "a"}, "metadata": {"k": ' + b"9" * 5000 + b"}}",
        b'{"task": "sentiment", "input": {"text": "a"}, "metadata": {"k": '
        + b"[" * 5000
        + b"]" * 5000
        + b"}}",
    ],
    ids=["not utf-8", "5000-digit number", "nested 5000 deep"],
)
def test_unparsable_bodies_are_400_invalid_json(api: TestClient, rows: Rows, raw: bytes) -> None:
    response = api.post("/v1/jobs", content=raw, headers=JSON_HEADERS)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert response.json()["error"]["field"] == "body"
    assert rows.count() == 0


def test_a_row_stored_before_the_door_was_shut_can_still_be_read(api: TestClient, database_url: str) -> None:
    """A lone surrogate written before intake refused them: SQLite holds it and every read of it used to
    answer 500; now it is returned as its JSON escape. PostgreSQL never stored it in the first place."""
    job = job_row(metadata={"k": "legacy\udfff"})
    if database_url.startswith("postgresql"):
        with pytest.raises(DataError):
            insert_rows(database_url, job)
        return
    insert_rows(database_url, job)
    for path in ("/v1/jobs", f"/v1/jobs/{job.id}", f"/v1/jobs/{job.id}?wait=0.5"):
        response = api.get(path)
        assert response.status_code == 200, response.text
        assert "legacy\\udfff" in response.text
