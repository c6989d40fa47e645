"""A batch's output and error files, written from its jobs when downloaded (so also while it runs)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from itertools import groupby

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.batches.results import is_output, result_line
from shared.constants import BATCH_OUTPUT_PAGE_LINES
from shared.db import repository
from shared.db.batch_models import Batch, BatchRequest, FileObject
from shared.db.models import Job

__all__ = ["output_lines"]


def output_lines(sessions: Callable[[], Session], file: FileObject) -> Iterator[bytes]:
    """The JSONL of a batch's output (or error) file: a line per request whose jobs are all terminal,
    read in pages of input lines, each page on a short session of its own (a download holds no
    transaction open); `sessions` is the app's session factory."""
    assert file.batch_id is not None
    maker = sessions
    with maker() as session:
        last = session.scalar(
            select(func.max(BatchRequest.line)).where(BatchRequest.batch_id == file.batch_id)
        )
    for start in range(0, (last or 0), BATCH_OUTPUT_PAGE_LINES):
        with maker() as session:
            batch = session.get(Batch, file.batch_id)
            if batch is None:  # the batch is gone: so is its output
                return
            want_output = file.id == batch.output_file_id
            page = session.execute(
                select(BatchRequest.line, BatchRequest.custom_id, BatchRequest.model, Job)
                .join(Job, Job.id == BatchRequest.job_id)
                .where(
                    BatchRequest.batch_id == batch.id,
                    BatchRequest.line > start,
                    BatchRequest.line <= start + BATCH_OUTPUT_PAGE_LINES,
                )
                .order_by(BatchRequest.line, BatchRequest.item)
            ).all()
            chunk = []
            for _line, rows in groupby(page, key=lambda row: row[0]):
                members = list(rows)
                jobs = [repository.to_out(row[3]) for row in members]
                if not all(job.status.is_terminal for job in jobs) or is_output(jobs) != want_output:
                    continue
                line = result_line(batch.endpoint, batch.status, members[0][1], members[0][2], jobs)
                chunk.append(json.dumps(line, ensure_ascii=False) + "\n")
        if chunk:
            yield "".join(chunk).encode("utf-8", "backslashreplace")
