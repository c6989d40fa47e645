"""OpenAI's file objects as the HTTP API returns them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from shared.db.batch_models import FileObject

__all__ = ["FileDeleted", "FileList", "FileOut", "file_out"]


class FileOut(BaseModel):
    """OpenAI's `file` object. A batch's output and error files are read live from its jobs: their
    `bytes` is 0 (the size is known only by reading them)."""

    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"] = "processed"
    status_details: str | None = None
    expires_at: int | None = None


class FileList(BaseModel):
    """A page of files, newest first (pass `last_id` as `after` for the next)."""

    object: Literal["list"] = "list"
    data: list[FileOut]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


def file_out(row: FileObject) -> FileOut:
    return FileOut(
        id=row.id,
        bytes=row.bytes,
        created_at=int(row.created_at.timestamp()),
        filename=row.filename,
        purpose=row.purpose,
    )
