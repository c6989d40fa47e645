"""Admission: the one check between a validated submission and its stored jobs.

`admit(session, rows)` runs in job creation (`api.jobs.creation.create_jobs`, and a batch's start)
after the rows are built and before they are stored: per tenant it reserves, all or nothing, a place
among its unfinished jobs and each generation job's `max_tokens` (or the task's configured default)
in its minute and day budgets (`shared.quotas.budget`), and records the reservation on the row
(`jobs.reserved_tokens`). It returns a `Reservation` to `release()` if the jobs are then not
created. When a job ends, `shared.lifecycle` returns what it did not use.

The quotas in force are the API app's own (`quotas_in_force`, set per request by
`api.quotas.middleware`), like `shared.limits`; where none are in force (a CLI, a benchmark, a test
calling `create_jobs` directly) nothing is reserved.

Batches (`/v1/batches`) reserve against the per-day budget only: their jobs run over a window of
hours at low priority, so they neither count as unfinished jobs nor draw on the per-minute budget.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import redis
import structlog
from sqlalchemy.orm import Session

from shared.constants import DEFAULT_TENANT
from shared.queueing import redis_client
from shared.quotas import budget
from shared.quotas.settings import QuotaSettings
from shared.quotas.tenant_limits import OverridesCache, TenantLimits, effective, read_overrides
from shared.settings import Settings
from shared.tasks import TASKS, Engine

__all__ = ["Quotas", "Reservation", "admit", "current_quotas", "quotas_in_force"]

log = structlog.get_logger(__name__)

_GENERATION_TASKS = frozenset(TASKS.by_engine(Engine.VLLM))


@dataclass(frozen=True)
class Quotas:
    """What admission needs from an app's settings: the default limits, the broker's Redis, the
    generation defaults a job's `max_tokens` falls back to, and the tenants' overrides (cached)."""

    settings: QuotaSettings
    redis_url: str
    default_max_tokens: int
    summary_max_tokens: int
    extract_max_tokens: int
    overrides: OverridesCache = field(compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Quotas:
        return cls(
            settings=settings.quotas,
            redis_url=settings.redis_url,
            default_max_tokens=settings.default_max_tokens,
            summary_max_tokens=settings.summary_max_tokens,
            extract_max_tokens=settings.extract_max_tokens,
            overrides=OverridesCache(settings.quotas.overrides_cache_s),
        )

    def limits(self, session: Session, tenant: str) -> TenantLimits:
        """The limits in force for `tenant` (its overrides read through the cache)."""
        return effective(
            self.settings, tenant, self.overrides.get(tenant, lambda: read_overrides(session, tenant))
        )

    def tokens(self, task: str, params: Mapping[str, Any]) -> int:
        """Generation tokens a job reserves: its `max_tokens`, else what the worker will use (0 for a
        task that generates nothing)."""
        if task not in _GENERATION_TASKS:
            return 0
        given = params.get("max_tokens")
        if isinstance(given, int) and given > 0:
            return given
        if task == "summarize":
            return self.summary_max_tokens
        if task == "extract":
            return self.extract_max_tokens
        return self.default_max_tokens

    def client(self) -> redis.Redis:
        return redis_client(self.redis_url)


_IN_FORCE: ContextVar[Quotas | None] = ContextVar("textfleet_quotas", default=None)


def current_quotas() -> Quotas | None:
    """The quotas in force here (None outside an API request)."""
    return _IN_FORCE.get()


@contextmanager
def quotas_in_force(quotas: Quotas) -> Iterator[Quotas]:
    """Admit jobs under `quotas` inside the block (this task or thread, and what it starts)."""
    token = _IN_FORCE.set(quotas)
    try:
        yield quotas
    finally:
        _IN_FORCE.reset(token)


@dataclass
class Reservation:
    """What one admission took; `release()` gives it all back (the jobs were not created)."""

    client: redis.Redis | None = None
    job_ids: list[str] = field(default_factory=list)

    def release(self) -> None:
        """Return everything reserved (at most once per job; failures are logged, never raised)."""
        if self.client is None or not self.job_ids:
            return
        ids, self.job_ids = self.job_ids, []
        try:
            budget.refund(self.client, [(job_id, 0) for job_id in ids])
        except Exception as exc:  # the reservation expires with its windows
            log.warning("quota.release_failed", jobs=len(ids), first_job_id=ids[0], error=str(exc))


def admit(session: Session, rows: Sequence[dict[str, Any]], *, batch: bool = False) -> Reservation:
    """Reserve the jobs of `rows` (built by `repository.new_job_row`) under the quotas in force, all or
    nothing: QuotaExceededError (429) or InvalidInputError (422, a request that can never fit) when a
    tenant's limit would be passed. Sets each row's `reserved_tokens` (the database's record)."""
    quotas = current_quotas()
    if quotas is None or not rows:
        return Reservation()
    requests: dict[str, budget.Request] = {}
    for row in rows:
        tenant = row.get("tenant_id") or DEFAULT_TENANT
        request = requests.get(tenant)
        if request is None:
            limits = quotas.limits(session, tenant)
            request = requests[tenant] = budget.Request(
                tenant,
                max_queued_jobs=None if batch else limits.max_queued_jobs,
                tokens_per_minute=None if batch else limits.tokens_per_minute,
                tokens_per_day=limits.tokens_per_day,
                track_open=not batch,
            )
        tokens = quotas.tokens(row["task"], row["params"])
        row["reserved_tokens"] = tokens
        request.jobs.append((row["id"], tokens))
    client = quotas.client()
    budget.reserve(client, list(requests.values()))
    return Reservation(client, [row["id"] for row in rows])
