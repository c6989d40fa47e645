"""`/v1/files` on real databases (PostgreSQL and SQLite), bytes in the database store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.utils.batches import jsonl, moderation_lines
from tests.utils.s3 import S3Server, seaweedfs


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


def _upload(api: TestClient, data: bytes, purpose: str = "batch") -> dict[str, object]:
    response = api.post("/v1/files", files={"file": ("in.jsonl", data)}, data={"purpose": purpose})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_upload_retrieve_list_download_delete(api: TestClient) -> None:
    data = jsonl(moderation_lines(3))
    created = _upload(api, data)
    assert created["object"] == "file"
    assert created["bytes"] == len(data)
    assert created["purpose"] == "batch"
    assert created["filename"] == "in.jsonl"
    file_id = str(created["id"])
    assert file_id.startswith("file-")

    assert api.get(f"/v1/files/{file_id}").json() == created
    listed = api.get("/v1/files", params={"purpose": "batch"}).json()
    assert file_id in [item["id"] for item in listed["data"]]
    content = api.get(f"/v1/files/{file_id}/content")
    assert content.status_code == 200
    assert content.content == data

    deleted = api.delete(f"/v1/files/{file_id}")
    assert deleted.json() == {"id": file_id, "object": "file", "deleted": True}
    missing = api.get(f"/v1/files/{file_id}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "file_not_found"


def test_unknown_purpose_is_refused(api: TestClient) -> None:
    response = api.post("/v1/files", files={"file": ("in.jsonl", b"{}\n")}, data={"purpose": "nonsense"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_purpose"


def test_file_over_the_limit_is_refused(make_client: object) -> None:
    api = make_client(files_max_bytes="100")  # type: ignore[operator]
    response = api.post("/v1/files", files={"file": ("in.jsonl", b"x" * 101)}, data={"purpose": "batch"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "file_too_large"
    assert (
        api.post("/v1/files", files={"file": ("in.jsonl", b"x" * 100)}, data={"purpose": "batch"}).status_code
        == 200
    )


def test_uploads_live_in_s3_when_configured(s3_server: S3Server, make_client: Any) -> None:
    import boto3  # type: ignore[import-untyped]

    api = make_client(**s3_server.env())
    data = jsonl(moderation_lines(2))
    file_id = str(_upload(api, data)["id"])
    client = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key_id,
        aws_secret_access_key=s3_server.secret_access_key,
        region_name="us-east-1",
    )
    stored = client.get_object(Bucket=s3_server.bucket, Key=f"textfleet/files/{file_id}")["Body"].read()
    assert stored == data  # the bytes are in the bucket, not the database
    assert api.get(f"/v1/files/{file_id}/content").content == data
    batch = api.post(
        "/v1/batches",
        json={"input_file_id": file_id, "endpoint": "/v1/moderations", "completion_window": "24h"},
    ).json()
    assert batch["request_counts"]["total"] == 2  # a batch reads its input from the bucket
    assert api.delete(f"/v1/files/{file_id}").json()["deleted"] is True
    with pytest.raises(client.exceptions.NoSuchKey):
        client.get_object(Bucket=s3_server.bucket, Key=f"textfleet/files/{file_id}")
