"""SQLAlchemy ORM models: the `jobs` table is the source of truth for every job."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from shared.constants import DEFAULT_TENANT, TENANT_MAX_CHARS

__all__ = ["Base", "IdempotencyKey", "Job", "WebhookDelivery", "utcnow"]

JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    """Timezone-aware now, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    """Declarative base of textfleet's tables."""


class Job(Base):
    """One submitted job, from intake to its terminal state."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)  # ULID: sortable by creation
    #: The tenant that submitted the job (`default` when authentication is off).
    tenant_id: Mapped[str] = mapped_column(
        String(TENANT_MAX_CHARS), default=DEFAULT_TENANT, server_default=text(f"'{DEFAULT_TENANT}'")
    )
    task: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    input: Mapped[dict[str, Any]] = mapped_column(JSONType)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    priority: Mapped[int] = mapped_column(Integer, default=5)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Generation tokens reserved from the tenant's budgets at admission (`shared.quotas`).
    reserved_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: When the job's message was last handed to the broker (the sweeper re-sends stale ones).
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    webhook: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    webhook_events: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    #: When the job's inputs and results were erased (on request, or by retention); the row stays.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: Usage accounting (issue 12, `shared.usage`): texts a succeeded classifier job classified.
    classified_texts: Mapped[int | None] = mapped_column(Integer, nullable=True)

    __table_args__ = (
        Index("ix_jobs_status_id", "status", "id"),
        Index("ix_jobs_task_id", "task", "id"),
        Index("ix_jobs_tenant_id_id", "tenant_id", "id"),
    )

    @property
    def metadata_(self) -> dict[str, Any]:
        """The client's metadata (the attribute `metadata` is reserved by SQLAlchemy)."""
        return self.meta

    @property
    def usage(self) -> dict[str, int] | None:
        """Token usage of a generation job, once known."""
        if self.prompt_tokens is None or self.completion_tokens is None:
            return None
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}


#: `GET /v1/usage` reads a tenant's jobs that ended in a period (`shared.db.usage`).
Index("ix_jobs_tenant_finished", Job.tenant_id, Job.finished_at)


class WebhookDelivery(Base):
    """One webhook event of a job or of a batch (its subject: exactly one of `job_id`, `batch_id`); its
    id is the `webhook-id` header, the same on every retry."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # "msg_" + ULID
    job_id: Mapped[str | None] = mapped_column(String(26), index=True, nullable=True)
    batch_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    #: A job's: started | completed; a batch's: the status it ended in (completed | expired | cancelled).
    event: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(String(2048))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: When an operator last re-sent a failed delivery: its max-age window starts again then.
    resent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        UniqueConstraint("job_id", "event", name="uq_webhook_deliveries_job_event"),
        UniqueConstraint("batch_id", "event", name="uq_webhook_deliveries_batch_event"),
        Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),
    )


class IdempotencyKey(Base):
    """An `Idempotency-Key` seen on a submission: the same key and body return the same jobs."""

    __tablename__ = "idempotency_keys"

    #: Keys are the tenant's own: two tenants may use the same key.
    tenant_id: Mapped[str] = mapped_column(
        String(TENANT_MAX_CHARS),
        primary_key=True,
        default=DEFAULT_TENANT,
        server_default=text(f"'{DEFAULT_TENANT}'"),
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    job_ids: Mapped[list[str]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
