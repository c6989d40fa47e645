"""A batch's output and error files, written from its jobs when downloaded (so also while it runs)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from sqlalchemy import select

from api.batches.results import is_output, result_line
from shared.db.batch_models import Batch, BatchRequest, FileObject
from shared.db.models import Job
from shared.db.session import get_sessionmaker
from shared.results import TERMINAL_STATUSES

__all__ = ["output_lines"]

_TERMINAL = [status.value for status in TERMINAL_STATUSES]
#: Jobs read per page.
PAGE = 2000


def output_lines(database_url: str, file: FileObject) -> Iterator[bytes]:
    """The JSONL of a batch's output (or error) file: a line per finished request, read in pages from
    the jobs, each page on a short session of its own (a download holds no transaction open)."""
    assert file.batch_id is not None
    maker = get_sessionmaker(database_url)
    after = ""
    while True:
        with maker() as session:
            batch = session.get(Batch, file.batch_id)
            if batch is None:  # the batch is gone: so is its output
                return
            want_output = file.id == batch.output_file_id
            page = session.execute(
                select(BatchRequest.custom_id, BatchRequest.model, Job)
                .join(Job, Job.id == BatchRequest.job_id)
                .where(
                    BatchRequest.batch_id == batch.id,
                    BatchRequest.job_id > after,
                    Job.status.in_(_TERMINAL),
                )
                .order_by(BatchRequest.job_id)
                .limit(PAGE)
            ).all()
            chunk = [
                json.dumps(
                    result_line(batch.endpoint, batch.status, custom_id, model, job), ensure_ascii=False
                )
                + "\n"
                for custom_id, model, job in page
                if is_output(job) == want_output
            ]
        if chunk:
            yield "".join(chunk).encode("utf-8", "backslashreplace")
        if len(page) < PAGE:
            return
        after = page[-1][2].id
