"""Tables: tenants, API keys, batches, jobs, attempts and the cost ledger.

Money is integer micro-USD; durations carry their unit in the column name.
Every row that belongs to a tenant carries ``tenant_id`` so each query can be
scoped by it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, date, datetime
from functools import cache
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A stored time, timezone-aware: SQLite hands back naive datetimes; all are UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _partial(name: str, columns: tuple[str, ...], where: str) -> Index:
    """An index holding only the rows that meet ``where`` (Postgres and SQLite alike)."""
    return Index(name, *columns, postgresql_where=text(where), sqlite_where=text(where))


def new_id(prefix: str) -> str:
    """A sortable-enough random id with a readable prefix, e.g. ``job_3f2a...``."""
    return f"{prefix}_{secrets.token_hex(12)}"


class Base(DeclarativeBase):
    """Declarative base shared by every table (and by Alembic's metadata)."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        datetime: DateTime(timezone=True),
    }


class Tenant(Base):
    """A customer of the cluster; the unit of isolation and billing."""

    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ten"))
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Signs this tenant's completion webhooks (HMAC-SHA256); requests a minute it may
    # make (None: the cluster's default).
    webhook_secret: Mapped[str | None] = mapped_column(String(80), default=None)
    rate_limit_rpm: Mapped[int | None] = mapped_column(Integer, default=None)
    # The tenant's default response-cache mode (off|read|write|on; None: on for
    # temperature-0 requests only). CONTEXT.md.
    response_cache: Mapped[str | None] = mapped_column(String(8), default=None)
    # Budgets (None: no limit; COSTS.md), the share of a budget that raises a
    # warning, and the routing objective for requests that name none.
    budget_daily_micro_usd: Mapped[int | None] = mapped_column(BigInteger, default=None)
    budget_monthly_micro_usd: Mapped[int | None] = mapped_column(BigInteger, default=None)
    budget_warn_ratio: Mapped[float] = mapped_column(Float, default=0.8, server_default="0.8")
    objective: Mapped[str | None] = mapped_column(String(16), default=None)
    # The strategy for requests that name none (``cascade``; PIPELINES.md).
    strategy: Mapped[str | None] = mapped_column(String(16), default=None)


class ApiKey(Base):
    """A tenant's API key, stored only as a SHA-256 hash plus a short display prefix."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("key"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Batch(Base):
    """A group of jobs submitted together; its status is derived from its jobs."""

    __tablename__ = "batches"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("bat"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    total: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    # OpenAI Batch API fields (a native batch has no input file), input lines that
    # were refused alone (they are in the error file), webhook and cancel times.
    input_file_id: Mapped[str | None] = mapped_column(String(60), default=None)
    endpoint: Mapped[str] = mapped_column(String(60), default="/v1/jobs", server_default="/v1/jobs")
    completion_window: Mapped[str] = mapped_column(String(16), default="24h", server_default="24h")
    batch_metadata: Mapped[dict[str, Any]] = mapped_column(
        "metadata", default=dict, server_default="{}"
    )
    rejected: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    callback_url: Mapped[str | None] = mapped_column(Text, default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)
    notified_at: Mapped[datetime | None] = mapped_column(default=None)


class Job(Base):
    """One unit of LLM work: the request, its route plan, its lease and its result."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("job"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("batches.id"), default=None)
    batch_index: Mapped[int | None] = mapped_column(Integer, default=None)
    custom_id: Mapped[str | None] = mapped_column(String(200), default=None)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    tier: Mapped[str] = mapped_column(String(16))
    tier_reasons: Mapped[list[Any]] = mapped_column(default=list)
    plan: Mapped[list[Any]] = mapped_column(default=list)
    # Every routing decision taken (tier, strong/weak: scorer, score, threshold, reasons).
    routing: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    # The experiment and arm admission assigned (issue 11; EXPERIMENTS.md), if any.
    experiment_id: Mapped[str | None] = mapped_column(String(40), default=None)
    experiment_arm: Mapped[str | None] = mapped_column(String(64), default=None)
    priority: Mapped[int] = mapped_column(Integer, default=5)
    request: Mapped[dict[str, Any]] = mapped_column()
    output: Mapped[str | None] = mapped_column(Text, default=None)
    tool_calls: Mapped[list[Any] | None] = mapped_column(default=None)
    finish_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    deployment: Mapped[str | None] = mapped_column(String(200), default=None)
    provider: Mapped[str | None] = mapped_column(String(100), default=None)
    model: Mapped[str | None] = mapped_column(String(200), default=None)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_input_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reasoning_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cost_micro_usd: Mapped[int] = mapped_column(BigInteger, default=0)
    # Budgets (COSTS.md): what of the tenant's reservation this row still holds (a
    # pipeline's parent holds for all its steps), and how much of ``cost_micro_usd``
    # the spend counters already count; settling compares them (``store.budget_holds``).
    budget_held_micro_usd: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    budget_counted_micro_usd: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    latency_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(200), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    # Delivery bookkeeping (see RELIABILITY.md): every claim counts a delivery; a
    # claim that takes over an expired lease (its worker died) counts a lease
    # expiry, capped so a job that kills its worker cannot loop forever.
    deadline_at: Mapped[datetime | None] = mapped_column(default=None)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    requeued_at: Mapped[datetime | None] = mapped_column(default=None)
    deliveries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_expiries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    redrives: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    callback_url: Mapped[str | None] = mapped_column(Text, default=None)
    notified_at: Mapped[datetime | None] = mapped_column(default=None)
    # Answered from the response cache (CONTEXT.md): no provider call, cost 0.
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A pipeline's step points at its parent job, with its position (PIPELINES.md).
    parent_job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE", name="fk_jobs_parent_job_id"), default=None
    )
    step_index: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        Index("ix_jobs_tenant_created", "tenant_id", "created_at"),
        # partial (migration 0015): a row version gets an entry only where it is looked
        # up, so a job's status changes write fewer index entries
        _partial("ix_jobs_batch_status", ("batch_id", "status"), "batch_id IS NOT NULL"),
        _partial("ix_jobs_batch_index", ("batch_id", "batch_index"), "batch_id IS NOT NULL"),
        _partial("ix_jobs_status_lease", ("status", "lease_expires_at"), "status = 'running'"),
        _partial(
            "ix_jobs_status_next",
            ("status", "next_attempt_at"),
            "status IN ('queued', 'retrying')",
        ),
        _partial("ix_jobs_status_deadline", ("status", "deadline_at"), "deadline_at IS NOT NULL"),
        UniqueConstraint("parent_job_id", "step_index", name="uq_jobs_parent_step"),
        _partial(
            "ix_jobs_experiment_arm",
            ("experiment_id", "experiment_arm"),
            "experiment_id IS NOT NULL",
        ),
        Index(
            "ix_jobs_webhook_pending",
            "status",
            postgresql_where=text("callback_url IS NOT NULL AND notified_at IS NULL"),
            sqlite_where=text("callback_url IS NOT NULL AND notified_at IS NULL"),
        ),
    )


class Attempt(Base):
    """One call to one deployment for one job, successful or not."""

    __tablename__ = "attempts"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("att"))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(40))  # its job's (no key of its own: 0016)
    deployment: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(32))
    http_status: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_input_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reasoning_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    started_at: Mapped[datetime] = mapped_column(default=utcnow)


class LedgerEntry(Base):
    """Exactly one row per billable provider call: who spent what, where."""

    __tablename__ = "cost_ledger"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40))  # its job's (no key of its own: 0016)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    attempt_id: Mapped[str] = mapped_column(ForeignKey("attempts.id"), unique=True)
    batch_id: Mapped[str | None] = mapped_column(String(40), default=None)
    tier: Mapped[str] = mapped_column(String(16))
    deployment: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    input_tokens: Mapped[int] = mapped_column(Integer)
    output_tokens: Mapped[int] = mapped_column(Integer)
    cached_input_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reasoning_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cost_micro_usd: Mapped[int] = mapped_column(BigInteger)
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # sync | provider_batch: which path the call took (usage by path, COSTS.md)
    path: Mapped[str] = mapped_column(String(16), default="sync", server_default="sync")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_ledger_tenant_created", "tenant_id", "created_at"),
        _partial("ix_ledger_batch", ("batch_id",), "batch_id IS NOT NULL"),
    )


class UsageDaily(Base):
    """The ledger rolled up per tenant, UTC day, tier, deployment and kind (COSTS.md).

    Kept by database triggers on ``cost_ledger`` and ``attempts`` inserts
    (migration 0006), never written by the application. ``kind`` is ``billed``,
    ``cache_hit`` (cost 0) or ``unbilled`` (failed calls, cost 0).
    """

    __tablename__ = "usage_daily"
    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    tier: Mapped[str] = mapped_column(String(16), primary_key=True)
    deployment: Mapped[str] = mapped_column(String(200), primary_key=True)
    provider: Mapped[str] = mapped_column(String(100), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    # a key's rows are spread over writers' connections, summed on read (store.rollup)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, default=0)
    calls: Mapped[int] = mapped_column(BigInteger, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cached_input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_micro_usd: Mapped[int] = mapped_column(BigInteger, default=0)


class File(Base):
    """An uploaded file (OpenAI's Files API; purpose ``batch`` is a batch's input).

    A batch's output and error files are not stored: they are rendered from its
    jobs when read (``orchestrator.jobs.views.result_line``).
    """

    __tablename__ = "files"
    id: Mapped[str] = mapped_column(String(60), primary_key=True, default=lambda: new_id("file"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column("bytes", BigInteger)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_files_tenant_created", "tenant_id", "created_at"),)


class WebhookDelivery(Base):
    """One completion notification to send (an outbox row), retried with backoff."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("whd"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    object_id: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        UniqueConstraint("kind", "object_id", name="uq_webhook_object"),
        Index("ix_webhook_status_next", "status", "next_attempt_at"),
    )


class Experiment(Base):
    """An A/B test of routing strategies for one tenant (EXPERIMENTS.md).

    ``arms``, ``guardrail`` and ``tiers`` hold the validated ``ExperimentSpec``
    parts as JSON; ``paused`` maps an arm the guardrail stopped to its reason.
    """

    __tablename__ = "experiments"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("exp"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="running")
    unit: Mapped[str] = mapped_column(String(16))
    tiers: Mapped[list[Any] | None] = mapped_column(default=None)
    control: Mapped[str] = mapped_column(String(64))
    arms: Mapped[list[Any]] = mapped_column()
    guardrail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    judge_share: Mapped[float] = mapped_column(Float, default=0.0)
    paused: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[str] = mapped_column(String(16), default="api")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_experiment_tenant_name"),
        Index("ix_experiments_tenant_status", "tenant_id", "status"),
    )


class JobFeedback(Base):
    """A score for a job's answer, from its client (``user``) or a grading job (``judge``)."""

    __tablename__ = "job_feedback"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("fb"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    score: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16), default="user")
    comment: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConversationSession(Base):
    """A conversation Switchyard keeps for a tenant (``session_id``; CONTEXT.md).

    ``last_deployment``/``last_tier`` give the next turn its affinity;
    ``context_start``/``context_window`` remember where the assembled context
    began, so the prompt prefix stays stable (and provider prompt caches hit);
    ``token_ratio`` is provider-reported over estimated prompt tokens.
    """

    __tablename__ = "sessions"
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    system: Mapped[str | None] = mapped_column(Text, default=None)
    turns: Mapped[int] = mapped_column(Integer, default=0)
    last_deployment: Mapped[str | None] = mapped_column(String(200), default=None)
    last_tier: Mapped[str | None] = mapped_column(String(16), default=None)
    last_job_id: Mapped[str | None] = mapped_column(String(40), default=None)
    context_start: Mapped[int] = mapped_column(Integer, default=0)
    context_window: Mapped[int] = mapped_column(Integer, default=0)
    token_ratio: Mapped[float] = mapped_column(Float, default=1.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SessionTurn(Base):
    """One message of a session, in order; a job's turns are written once (by ``job_id``)."""

    __tablename__ = "session_turns"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    session_id: Mapped[str] = mapped_column(String(100))
    seq: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str] = mapped_column(String(40))
    message: Mapped[dict[str, Any]] = mapped_column()
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("tenant_id", "session_id", "seq", name="uq_session_turn_seq"),
        Index("ix_session_turns_job", "tenant_id", "session_id", "job_id"),
    )


def detached_job(row: Mapping[Any, Any]) -> Job:
    """A transient ``Job`` holding ``row`` (column name -> value), as ``Job(**row)`` would.

    The values go straight into the instance's ``__dict__``: ``Job(**row)`` sets them one
    by one through SQLAlchemy's attribute events, ten times the CPU, on every claim of a
    busy worker and every answer the API reads from its completion event.
    """
    job: Job = Job._sa_class_manager.new_instance()  # type: ignore[attr-defined]
    attrs = _job_attributes()
    job.__dict__.update({attrs.get(k, k): v for k, v in row.items()})
    return job


@cache
def _job_attributes() -> dict[str, str]:
    """Column name -> attribute name (the mapper is read once every class is defined)."""
    return {c.key: attr.key for attr in Job.__mapper__.column_attrs for c in attr.columns}
