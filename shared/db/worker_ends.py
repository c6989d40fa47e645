"""A worker's completion batch in one statement: `finish_many`, the grouped form of `repository.finish`
for a worker's own running jobs (written through `shared.lifecycle.write`).

Two forms of one statement, the same rule (a row still `running` as this worker's takes its outcome;
any other is left as it is), the same columns returned:

- PostgreSQL: `UPDATE … FROM unnest(<one array per column>)`, a constant SQL text whatever the batch's
  size, so it is compiled once and each batch only binds its arrays. (The `VALUES` form builds and
  compiles a new statement of rows times columns parameters per batch: the worker's largest cost in
  `textfleet bench --scenario overhead --profile` once its messages carried groups.)
- SQLite, which has neither arrays nor `unnest`: `UPDATE … FROM` a `VALUES` list in a CTE.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import Integer, String, bindparam, cast, column, func, text, update, values
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Session

from shared.db.models import JSONType, UTCDateTime, utcnow
from shared.db.repository import _ACCOUNTED, _CHANGED, _JOBS, AnyRow, _columns
from shared.schemas import JobStatus

__all__ = ["WORKER_END_STATUSES", "Outcome", "finish_many"]

#: The states a worker writes of its own running jobs: what `finish_many` writes.
WORKER_END_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED)

#: What the statement returns of each changed row (as `repository.finish` returns it).
_RETURNED = _columns(*_CHANGED, *_ACCOUNTED)

_POSTGRES = (
    text(
        "UPDATE jobs SET status = e.status, result = e.result, error = e.error, finished_at = :now, "  # noqa: S608
        "classified_texts = e.classified_texts, "
        "prompt_tokens = COALESCE(e.prompt_tokens, jobs.prompt_tokens), "
        "completion_tokens = COALESCE(e.completion_tokens, jobs.completion_tokens) "
        "FROM unnest(CAST(:ids AS text[]), CAST(:statuses AS text[]), CAST(:results AS jsonb[]), "
        "CAST(:errors AS jsonb[]), CAST(:texts AS integer[]), CAST(:prompts AS integer[]), "
        "CAST(:completions AS integer[])) "
        "AS e(id, status, result, error, classified_texts, prompt_tokens, completion_tokens) "
        "WHERE jobs.id = e.id AND jobs.status = :running AND jobs.worker = :worker "
        "RETURNING " + ", ".join(f"jobs.{c.name}" for c in _RETURNED)
    )
    .bindparams(
        bindparam("now", type_=UTCDateTime()),
        bindparam("ids", type_=ARRAY(String)),
        bindparam("statuses", type_=ARRAY(String)),
        bindparam("results", type_=ARRAY(JSONB)),
        bindparam("errors", type_=ARRAY(JSONB)),
        bindparam("texts", type_=ARRAY(Integer)),
        bindparam("prompts", type_=ARRAY(Integer)),
        bindparam("completions", type_=ARRAY(Integer)),
        bindparam("worker", type_=String),
    )
    .columns(*_RETURNED)
)


class Outcome(Protocol):
    """What `finish_many` writes of one job (`shared.lifecycle.Completion` is one)."""

    @property
    def job_id(self) -> str: ...
    @property
    def status(self) -> JobStatus: ...
    @property
    def result(self) -> dict[str, Any] | None: ...
    @property
    def error(self) -> dict[str, Any] | None: ...
    @property
    def usage(self) -> dict[str, int] | None: ...
    @property
    def classified_texts(self) -> int | None: ...


def finish_many(session: Session, outcomes: Sequence[Outcome], *, worker: str) -> dict[str, AnyRow]:
    """`finish` for a group of `worker`'s own running jobs in one statement (a worker's completion
    batch): each that is still `running` as `worker`'s takes its outcome's state (succeeded or failed),
    result, error and accounting columns. The changed rows (as `finish` returns them) by job id; a job
    that was not is absent, and nothing is written for it."""
    if any(o.status not in WORKER_END_STATUSES for o in outcomes):
        raise ValueError("finish_many writes succeeded or failed states only")
    if not outcomes:
        return {}
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(_POSTGRES, _columns_of(outcomes, worker))
    else:
        rows = session.execute(_values_statement(outcomes, worker))
    return {row.id: row for row in rows}


def _tokens(outcome: Outcome, kind: str) -> int | None:
    return None if outcome.usage is None else outcome.usage[kind]


def _columns_of(outcomes: Sequence[Outcome], worker: str) -> dict[str, Any]:
    return {
        "now": utcnow(),
        "ids": [o.job_id for o in outcomes],
        "statuses": [o.status.value for o in outcomes],
        "results": [o.result for o in outcomes],
        "errors": [o.error for o in outcomes],
        "texts": [o.classified_texts for o in outcomes],
        "prompts": [_tokens(o, "prompt_tokens") for o in outcomes],
        "completions": [_tokens(o, "completion_tokens") for o in outcomes],
        "worker": worker,
        "running": JobStatus.RUNNING.value,
    }


def _values_statement(outcomes: Sequence[Outcome], worker: str) -> Any:
    ends = values(
        column("id", String),
        column("status", String),
        column("result", JSONType),
        column("error", JSONType),
        column("classified_texts", Integer),
        column("prompt_tokens", Integer),
        column("completion_tokens", Integer),
        name="ends",
    ).data(
        [
            (
                o.job_id,
                o.status.value,
                o.result,
                o.error,
                o.classified_texts,
                _tokens(o, "prompt_tokens"),
                _tokens(o, "completion_tokens"),
            )
            for o in outcomes
        ]
    )
    table = ends.cte("ends")  # a CTE: SQLite names a VALUES list's columns only there
    jobs = _JOBS.c
    return (
        update(_JOBS)
        .where(jobs.id == table.c.id, jobs.status == JobStatus.RUNNING.value, jobs.worker == worker)
        .values(
            status=table.c.status,
            result=table.c.result,  # SQLite stores JSON as text: no cast (it would give it numeric affinity)
            error=table.c.error,
            finished_at=utcnow(),
            classified_texts=cast(table.c.classified_texts, Integer),
            prompt_tokens=func.coalesce(cast(table.c.prompt_tokens, Integer), jobs.prompt_tokens),
            completion_tokens=func.coalesce(cast(table.c.completion_tokens, Integer), jobs.completion_tokens),
        )
        .returning(*_RETURNED)
    )
