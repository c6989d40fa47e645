"""Tables of OpenAI-style files and batches: `files`, `file_blobs`, `batches`, `batch_requests`.

A batch is jobs: each request of a batch is one row of `jobs` (run, retried and canceled like any
other), and `batch_requests` says which batch and `custom_id` it belongs to. Counts and output files
are read from the jobs, so they can never disagree with them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.constants import DEFAULT_TENANT, TENANT_MAX_CHARS
from shared.db.models import Base, JSONType, UTCDateTime, utcnow

__all__ = ["Batch", "BatchRequest", "FileBlob", "FileObject"]


class FileObject(Base):
    """An uploaded file (OpenAI's `file` object). Its bytes live in the configured store."""

    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # "file-" + ULID
    #: The tenant that owns it (`default` when authentication is off).
    tenant_id: Mapped[str] = mapped_column(
        String(TENANT_MAX_CHARS), default=DEFAULT_TENANT, server_default=text(f"'{DEFAULT_TENANT}'")
    )
    purpose: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(255))
    bytes: Mapped[int] = mapped_column(BigInteger)
    #: Where the bytes are: `database` (table `file_blobs`) or `s3` (key = the id, in the bucket).
    storage: Mapped[str] = mapped_column(String(16))
    #: For a batch's output and error files: the batch (their content is read from its jobs).
    batch_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_files_tenant_id_id", "tenant_id", "id"),)


class FileBlob(Base):
    """The bytes of a file kept in the database (the default store)."""

    __tablename__ = "file_blobs"

    file_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)


class Batch(Base):
    """A batch of requests (OpenAI's `batch` object); its requests are jobs."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # "batch_" + ULID
    #: The tenant that owns it (`default` when authentication is off).
    tenant_id: Mapped[str] = mapped_column(
        String(TENANT_MAX_CHARS), default=DEFAULT_TENANT, server_default=text(f"'{DEFAULT_TENANT}'")
    )
    status: Mapped[str] = mapped_column(String(16))
    endpoint: Mapped[str] = mapped_column(String(64))
    input_file_id: Mapped[str] = mapped_column(String(40))
    completion_window: Mapped[str] = mapped_column(String(8))
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONType, nullable=True)
    errors: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, nullable=True)
    output_file_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    error_file_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    total: Mapped[int] = mapped_column(Integer, default=0)
    priority: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    in_progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finalizing_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancelling_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: textfleet's extension: the URL that receives a signed `batch.<status>` event when it ends.
    webhook: Mapped[str | None] = mapped_column(String(2048), nullable=True)

    __table_args__ = (
        Index("ix_batches_status", "status"),
        Index("ix_batches_tenant_id_id", "tenant_id", "id"),
    )


class BatchRequest(Base):
    """A job of a batch's request: its `custom_id`, its line in the input file, and which of the
    request's jobs it is (`item`: a moderation of several inputs is a job per input, in order)."""

    __tablename__ = "batch_requests"

    job_id: Mapped[str] = mapped_column(String(26), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(40))
    custom_id: Mapped[str] = mapped_column(String(512))
    line: Mapped[int] = mapped_column(Integer)
    item: Mapped[int] = mapped_column(Integer, default=0)
    #: The `model` the request named (echoed in its OpenAI response body).
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)

    __table_args__ = (
        UniqueConstraint("batch_id", "custom_id", "item", name="uq_batch_requests_batch_custom_id_item"),
        Index("ix_batch_requests_batch_line", "batch_id", "line"),
    )
