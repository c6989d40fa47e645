"""`/v1/files`: upload (multipart, OpenAI's client), retrieve, list, delete, download content.

Scopes: upload and delete need `jobs:write`, list, retrieve and download `jobs:read`. A file is its
uploader's tenant's (a batch's output files, the batch's); another tenant's file answers `404` exactly
like a missing one; an `admin` key sees every tenant's files."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.batches.output import output_lines
from api.deps import FilesDep, JobsDep, ReaderDep, SessionDep, WriterDep
from api.files.protocol import FileDeleted, FileList, FileOut, file_out
from api.openai.errors import OpenAIRoute
from api.visibility import visible_tenant
from shared.errors import InvalidInputError

__all__ = ["router"]

router = APIRouter(prefix="/v1/files", tags=["files"], route_class=OpenAIRoute)

_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"description": 'OpenAI\'s `{"error": {"message", "type", "param", "code"}}`'}
    for code in (400, 404, 503)
}


@router.post("", response_model=FileOut, summary="Upload a file", responses=_ERRORS)
async def upload_file(
    service: FilesDep,
    session: SessionDep,
    principal: WriterDep,
    file: Annotated[UploadFile, File(description="The file; for a batch, JSONL of requests.")],
    purpose: Annotated[str, Form(description="`batch` for a batch's input.")],
) -> FileOut:
    """Store a file (at most `files_max_bytes`, 200 MB by default). Its lines are checked when a
    batch is created from it."""
    data = await file.read(service.settings.files_max_bytes + 1)
    if len(data) > service.settings.files_max_bytes:
        raise InvalidInputError(
            f"the file is larger than {service.settings.files_max_bytes} bytes",
            field="file",
            code="file_too_large",
        )
    row = await run_in_threadpool(
        lambda: service.create(
            session,
            data=data,
            filename=file.filename or "upload.jsonl",
            purpose=purpose,
            tenant=principal.tenant,
        )
    )
    return file_out(row)


@router.get("", response_model=FileList, summary="List files", responses=_ERRORS)
def list_files(
    service: FilesDep,
    session: SessionDep,
    principal: ReaderDep,
    after: Annotated[str | None, Query(description="`last_id` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    purpose: Annotated[str | None, Query()] = None,
) -> FileList:
    rows, more = service.list(
        session, limit=limit, after=after, purpose=purpose, order=order, tenant=visible_tenant(principal)
    )
    data = [file_out(row) for row in rows]
    return FileList(
        data=data, first_id=data[0].id if data else None, last_id=data[-1].id if data else None, has_more=more
    )


@router.get("/{file_id}", response_model=FileOut, summary="Get a file", responses=_ERRORS)
def get_file(file_id: str, service: FilesDep, session: SessionDep, principal: ReaderDep) -> FileOut:
    return file_out(service.get(session, file_id, visible_tenant(principal)))


@router.delete("/{file_id}", response_model=FileDeleted, summary="Delete a file", responses=_ERRORS)
def delete_file(file_id: str, service: FilesDep, session: SessionDep, principal: WriterDep) -> FileDeleted:
    service.delete(session, file_id, visible_tenant(principal))
    return FileDeleted(id=file_id)


@router.get("/{file_id}/content", summary="Download a file's content", responses=_ERRORS)
def file_content(
    file_id: str, service: FilesDep, session: SessionDep, jobs: JobsDep, principal: ReaderDep
) -> Response:
    """The file's bytes. A batch's output or error file holds a line per request finished so far, so
    it can be read while the batch runs (complete once the batch is `completed`, `expired` or
    `cancelled`)."""
    row = service.get(session, file_id, visible_tenant(principal))
    if row.batch_id is not None:
        lines = output_lines(jobs.sessions, row)
        return StreamingResponse(lines, media_type="application/jsonl")
    return Response(service.content(session, row), media_type="application/octet-stream")
