"""`GET /v1/usage`: the period a request asks for, checked, and its usage read in one query.

The sums are the database's (`shared.db.usage`: one `GROUP BY` per (day,) task and status); this
service only checks the period, and folds those few cells into the response's total and groups.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from api.usage.protocol import GroupBy, UsageFigures, UsageGroup, UsageReport
from shared.constants import USAGE_DEFAULT_DAYS, USAGE_MAX_DAYS
from shared.db.models import utcnow
from shared.db.usage import UsageCell, usage_cells
from shared.errors import InvalidInputError

__all__ = ["UsageService", "period"]


def _utc(value: datetime, field: str) -> datetime:
    """`value` in UTC (a value without an offset is taken as UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
        raise InvalidInputError("is out of range once in UTC", field=field, code="validation_error") from None


def period(
    start: datetime | None, end: datetime | None, *, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """`[from, to)` in UTC: `to` defaults to now, `from` to `USAGE_DEFAULT_DAYS` before `to`; `from`
    must be before `to`, at most `USAGE_MAX_DAYS` apart (InvalidInputError naming the field if not)."""
    to = _utc(end, "to") if end is not None else (now or utcnow())
    if start is not None:
        from_ = _utc(start, "from")
    else:
        try:
            from_ = to - timedelta(days=USAGE_DEFAULT_DAYS)
        except OverflowError:
            raise InvalidInputError(
                f"is too early to count back {USAGE_DEFAULT_DAYS} days from; give `from`",
                field="to",
                code="validation_error",
            ) from None
    if from_ >= to:
        if end is None:
            raise InvalidInputError(
                "must be before now (the default `to`)", field="from", code="validation_error"
            )
        raise InvalidInputError("must be after `from`", field="to", code="validation_error")
    if to - from_ > timedelta(days=USAGE_MAX_DAYS):
        raise InvalidInputError(
            f"the period from `from` to `to` spans more than {USAGE_MAX_DAYS} days; ask for less",
            field="to",
            code="validation_error",
        )
    return from_, to


class _Sums:
    """Running sums of cells (one group's, or the total)."""

    def __init__(self) -> None:
        self.jobs = self.prompt_tokens = self.completion_tokens = self.classified_texts = 0
        self.run_seconds = 0.0
        self.by_status: dict[str, int] = {}
        self.by_task: dict[str, int] = {}

    def add(self, cell: UsageCell) -> None:
        self.jobs += cell.jobs
        self.by_status[cell.status] = self.by_status.get(cell.status, 0) + cell.jobs
        self.by_task[cell.task] = self.by_task.get(cell.task, 0) + cell.jobs
        self.prompt_tokens += cell.prompt_tokens
        self.completion_tokens += cell.completion_tokens
        self.classified_texts += cell.classified_texts
        self.run_seconds += cell.run_seconds

    def figures(self) -> dict[str, object]:
        return {
            "jobs": self.jobs,
            "jobs_by_status": dict(sorted(self.by_status.items())),
            "jobs_by_task": dict(sorted(self.by_task.items())),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "classified_texts": self.classified_texts,
            "run_seconds": round(self.run_seconds, 6),
        }


def report(
    cells: list[UsageCell], tenant: str, from_: datetime, to: datetime, group_by: GroupBy
) -> UsageReport:
    """The response for `cells` (sums per (day,) task and status)."""
    total = _Sums()
    groups: dict[str, _Sums] = {}
    for cell in cells:
        key = cell.day if group_by is GroupBy.DAY and cell.day is not None else cell.task
        total.add(cell)
        groups.setdefault(key, _Sums()).add(cell)
    return UsageReport(
        tenant=tenant,
        from_=from_,
        to=to,
        group_by=group_by,
        total=UsageFigures.model_validate(total.figures()),
        groups=[UsageGroup.model_validate({"key": k, **groups[k].figures()}) for k in sorted(groups)],
    )


class UsageService:
    """Usage reports over the app's database (built once per app, held on `app.state.usage`)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def usage(self, tenant: str, from_: datetime, to: datetime, group_by: GroupBy) -> UsageReport:
        """`tenant`'s usage in `[from_, to)` (a `period`), grouped by task or day (blocking: run it in
        the threadpool)."""
        with self._sessions() as session:
            cells = usage_cells(session, tenant, from_, to, by_day=group_by is GroupBy.DAY)
        return report(cells, tenant, from_, to, group_by)
