"""Tables of the provider batch path (issue 26): provider batches, and the jobs they carry.

A ``ProviderBatch`` is one batch at a provider (one deployment, one input file).
Its ``state`` is written before each external step is taken, so a worker killed
at any point finds where it was:

    prepared     lines assigned, nothing sent yet
    uploading    the input file is being uploaded, under the name ``<id>.jsonl``:
                 on restart, a file of that name at the provider is ours
    uploaded     ``provider_file_id`` known
    submitting   the batch is being created with ``metadata.switchyard_batch = <id>``:
                 on restart, a provider batch carrying it is ours (never a second one)
    submitted    ``provider_batch_id`` known; polled at ``next_poll_at`` with backoff
    collecting   the provider batch ended; its output and error files are read
    done         every line written (answered, or sent back to the synchronous path)

A ``ProviderBatchLine`` links one job to its provider batch (none yet while it
waits to be gathered); its ``state`` makes writing a line's result happen once.

A provider cannot cancel one line of a batch. A job that is cancelled, or whose
deadline comes close, while its line is open is *withdrawn* in our store (the
job runs synchronously, or stays cancelled); a provider batch left with no line
that wants an answer is cancelled at the provider (RELIABILITY.md).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.store.models import Base, LedgerEntry, new_id, utcnow


class ProviderBatch(Base):
    """One batch at a provider; exists so no step of its lifecycle is taken twice or lost."""

    __tablename__ = "provider_batches"
    __table_args__ = (Index("ix_provider_batches_state_poll", "state", "next_poll_at"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("pbat"))
    deployment: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16), default="prepared")
    provider_file_id: Mapped[str | None] = mapped_column(String(200), default=None)
    provider_batch_id: Mapped[str | None] = mapped_column(String(200), default=None)
    provider_status: Mapped[str | None] = mapped_column(String(32), default=None)
    output_file_id: Mapped[str | None] = mapped_column(String(200), default=None)
    error_file_id: Mapped[str | None] = mapped_column(String(200), default=None)
    lines: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(default=None)
    polled_at: Mapped[datetime | None] = mapped_column(default=None)
    next_poll_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # the task advancing it holds it until then (compare-and-set; a dead task's lapses)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)


class ProviderBatchLine(Base):
    """A job going by provider batch: waiting to be gathered, in a batch, or written."""

    __tablename__ = "provider_batch_lines"
    __table_args__ = (
        Index("ix_provider_batch_lines_waiting", "deployment", "state"),
        Index("ix_provider_batch_lines_state", "state"),
    )
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    deployment: Mapped[str] = mapped_column(String(200))
    provider_batch_id: Mapped[str | None] = mapped_column(
        ForeignKey("provider_batches.id"), default=None, index=True
    )
    custom_id: Mapped[str] = mapped_column(String(64))
    # waiting | batched | answered | billed (answered, but not the job's answer: it had
    # ended, gone synchronous or been withdrawn) | released (to sync) | withdrawn (the
    # job was cancelled, or went synchronous near its deadline, while its line was open)
    state: Mapped[str] = mapped_column(String(16), default="waiting")
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # provider batches the line was sent in that gave it no answer (failed, expired,
    # cancelled); it waits for another while this is under provider_batch_max_tries
    tries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


# a tenant's provider batch ledger rows, read for spend by path (orchestrator.costs.spend_by_path)
BATCH_PATH = text("path = 'provider_batch'")
Index(
    "ix_ledger_provider_batch",
    LedgerEntry.tenant_id,
    LedgerEntry.created_at,
    postgresql_where=BATCH_PATH,
    sqlite_where=BATCH_PATH,
)
