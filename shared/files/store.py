"""Where file bytes live: the database (default) or an S3-compatible object store (boto3).

Both stores take the caller's session: the database store writes in its transaction (the file row
and its bytes commit together); the S3 store writes the object before the row is committed, so a
row never names a missing object (an object whose row failed to commit is deleted again, best effort).
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import delete
from sqlalchemy.orm import Session

from shared.db.batch_models import FileBlob
from shared.errors import TransientDatabaseError
from shared.files.settings import FilesSettings

__all__ = ["DatabaseStore", "FileStore", "FileStoreUnavailableError", "S3Store", "make_store"]


class FileStoreUnavailableError(TransientDatabaseError):
    """The object store did not answer (a 503: retry later). A storage outage, like the database's."""

    code = "file_store_unavailable"


class FileStore(Protocol):
    """Bytes of files, by file id."""

    name: str

    def put(self, session: Session, file_id: str, data: bytes) -> None: ...

    def get(self, session: Session, file_id: str) -> bytes: ...

    def delete(self, session: Session, file_id: str) -> None: ...


class DatabaseStore:
    """Bytes in the `file_blobs` table of the jobs database."""

    name = "database"

    def put(self, session: Session, file_id: str, data: bytes) -> None:
        session.add(FileBlob(file_id=file_id, content=data))

    def get(self, session: Session, file_id: str) -> bytes:
        blob = session.get(FileBlob, file_id)
        if blob is None:
            raise KeyError(file_id)
        return bytes(blob.content)

    def delete(self, session: Session, file_id: str) -> None:
        session.execute(delete(FileBlob).where(FileBlob.file_id == file_id))


class S3Store:
    """Bytes as objects `<prefix><file id>` in a bucket of any S3-compatible store."""

    name = "s3"

    def __init__(self, settings: FilesSettings) -> None:
        import boto3  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from botocore.config import Config  # type: ignore[import-untyped,import-not-found,unused-ignore]

        secret = settings.files_s3_secret_access_key
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=settings.files_s3_endpoint_url,
            region_name=settings.files_s3_region,
            aws_access_key_id=settings.files_s3_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret is not None else None,
            config=Config(
                connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"}
            ),
        )
        assert settings.files_s3_bucket is not None  # FilesSettings requires it with this backend
        self._bucket = settings.files_s3_bucket
        self._prefix = settings.files_s3_prefix

    def _key(self, file_id: str) -> str:
        return f"{self._prefix}{file_id}"

    def put(self, session: Session, file_id: str, data: bytes) -> None:
        try:
            self._client.put_object(Bucket=self._bucket, Key=self._key(file_id), Body=data)
        except Exception as exc:  # botocore raises many kinds (connection, client errors)
            raise FileStoreUnavailableError(f"the file store is unavailable: {type(exc).__name__}") from exc

    def get(self, session: Session, file_id: str) -> bytes:
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=self._key(file_id))
            data: bytes = response["Body"].read()
        except self._client.exceptions.NoSuchKey as exc:
            raise KeyError(file_id) from exc
        except Exception as exc:
            raise FileStoreUnavailableError(f"the file store is unavailable: {type(exc).__name__}") from exc
        return data

    def delete(self, session: Session, file_id: str) -> None:
        try:
            self._client.delete_object(Bucket=self._bucket, Key=self._key(file_id))
        except Exception as exc:
            raise FileStoreUnavailableError(f"the file store is unavailable: {type(exc).__name__}") from exc


def make_store(settings: FilesSettings) -> FileStore:
    """The store `settings` name."""
    if settings.files_backend == "s3":
        return S3Store(settings)
    return DatabaseStore()
