"""File stores: the database (PostgreSQL and SQLite) and a real S3-compatible server (SeaweedFS)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.db.session import session_scope
from shared.files.settings import FilesSettings
from shared.files.store import DatabaseStore, FileStore, FileStoreUnavailableError, S3Store, make_store
from tests.utils.s3 import S3Server, seaweedfs

#: Bytes a JSONL file may hold, NUL and invalid UTF-8 included: a store keeps bytes, not text.
DATA = b'{"custom_id": "a"}\n' + bytes(range(256)) * 64


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


def _roundtrip(store: FileStore, database_url: str) -> None:
    with session_scope(database_url) as session:
        store.put(session, "file-test-1", DATA)
    with session_scope(database_url) as session:
        assert store.get(session, "file-test-1") == DATA
        store.delete(session, "file-test-1")
    with session_scope(database_url) as session, pytest.raises(KeyError):
        store.get(session, "file-test-1")


def test_database_store(database_url: str) -> None:
    store = make_store(FilesSettings(files_backend="database"))
    assert isinstance(store, DatabaseStore)
    _roundtrip(store, database_url)


def test_s3_store_on_a_real_server(s3_server: S3Server, database_url: str) -> None:
    settings = FilesSettings.model_validate(s3_server.env())
    store = make_store(settings)
    assert isinstance(store, S3Store)
    _roundtrip(store, database_url)


def test_s3_store_unreachable_is_retryable(database_url: str) -> None:
    settings = FilesSettings(
        files_backend="s3",
        files_s3_bucket="b",
        files_s3_endpoint_url="http://127.0.0.1:9",
        files_s3_access_key_id="k",
        files_s3_secret_access_key="s",  # type: ignore[arg-type]
    )
    with session_scope(database_url) as session, pytest.raises(FileStoreUnavailableError):
        S3Store(settings).put(session, "file-x", b"x")


def test_s3_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="files_s3_bucket"):
        FilesSettings(files_backend="s3")
    with pytest.raises(ValueError, match="or neither"):
        FilesSettings(files_s3_access_key_id="k")
