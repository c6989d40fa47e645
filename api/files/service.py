"""File logic: store an upload, read, list and delete files. Built once per app (`FilesService`).

A batch's output and error files are rows without bytes (`batch_id` set): their content is the
batch's finished requests, read from the jobs when asked (`api.batches.service.output_lines`), so it is
downloadable while the batch runs and can never disagree with the jobs.

Every file belongs to a tenant (its uploader's; a batch's output files, the batch's). With `tenant`
given, reads see only that tenant's files, and another tenant's file is "not found" with the same
words as a missing one (`tenant=None`: every tenant's, for an admin).
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session
from ulid import ULID

from shared.constants import DEFAULT_TENANT
from shared.db.batch_models import FileObject
from shared.errors import ConflictError, InvalidInputError, JobNotFoundError
from shared.files.settings import FilesSettings
from shared.files.store import FileStore, make_store

__all__ = ["PURPOSES", "FilesService", "new_file_id"]

log = structlog.get_logger(__name__)

#: Purposes a client may upload with (OpenAI's names); outputs are `batch_output`.
PURPOSES = frozenset({"batch", "user_data"})


def new_file_id() -> str:
    return f"file-{ULID()}"


class FilesService:
    """Files, their bytes in the configured store."""

    def __init__(self, settings: FilesSettings, store: FileStore | None = None) -> None:
        self.settings = settings
        self.store = store or make_store(settings)

    def create(
        self, session: Session, *, data: bytes, filename: str, purpose: str, tenant: str = DEFAULT_TENANT
    ) -> FileObject:
        if purpose not in PURPOSES:
            raise InvalidInputError(
                f"purpose must be one of {sorted(PURPOSES)}, got {purpose!r}",
                field="purpose",
                code="invalid_purpose",
            )
        if len(data) > self.settings.files_max_bytes:
            raise InvalidInputError(
                f"the file is {len(data)} bytes; the maximum is {self.settings.files_max_bytes}",
                field="file",
                code="file_too_large",
            )
        row = FileObject(
            id=new_file_id(),
            tenant_id=tenant,
            purpose=purpose,
            filename=filename[:255],
            bytes=len(data),
            storage=self.store.name,
        )
        try:
            session.add(row)
            self.store.put(session, row.id, data)
            session.commit()
        except BaseException:
            session.rollback()
            if self.store.name != "database":
                try:
                    self.store.delete(session, row.id)
                except Exception as exc:  # best effort: an orphan object names no row
                    log.warning("file.orphan_object", file_id=row.id, error=str(exc))
            raise
        return row

    def get(self, session: Session, file_id: str, tenant: str | None = None) -> FileObject:
        """The file `file_id` (of `tenant`, when given); JobNotFoundError otherwise."""
        row = session.get(FileObject, file_id)
        if row is None or (tenant is not None and row.tenant_id != tenant):
            raise JobNotFoundError(f"no file with id {file_id!r}", code="file_not_found")
        return row

    def content(self, session: Session, row: FileObject) -> bytes:
        """The bytes of an uploaded file."""
        try:
            return self.store.get(session, row.id) if row.storage == self.store.name else self._elsewhere(row)
        except KeyError:
            raise JobNotFoundError(
                f"the content of file {row.id!r} is missing", code="file_not_found"
            ) from None

    def _elsewhere(self, row: FileObject) -> bytes:
        raise ConflictError(
            f"file {row.id!r} is kept in the {row.storage!r} store; this deployment uses {self.store.name!r}"
        )

    def list(
        self,
        session: Session,
        *,
        limit: int,
        after: str | None,
        purpose: str | None,
        order: str,
        tenant: str | None = None,
    ) -> tuple[Sequence[FileObject], bool]:
        """A page of files (by id: creation order) and whether more follow; with `tenant`, its files only."""
        query = select(FileObject).limit(limit + 1)
        if tenant is not None:
            query = query.where(FileObject.tenant_id == tenant)
        descending = order == "desc"
        query = query.order_by(FileObject.id.desc() if descending else FileObject.id)
        if after is not None:
            query = query.where(FileObject.id < after if descending else FileObject.id > after)
        if purpose is not None:
            query = query.where(FileObject.purpose == purpose)
        rows = session.scalars(query).all()
        return rows[:limit], len(rows) > limit

    def delete(self, session: Session, file_id: str, tenant: str | None = None) -> None:
        row = self.get(session, file_id, tenant)
        if row.batch_id is None and row.storage == self.store.name:
            self.store.delete(session, row.id)
        session.delete(row)
        session.commit()
