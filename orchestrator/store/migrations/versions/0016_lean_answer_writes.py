"""attempts and ledger: less work per answered call in Postgres (issue 24)

The statement that writes an answer (``store.answered``) inserts an attempt and a
ledger row; their triggers and foreign keys took more of its time than its own plan
(``auto_explain``, one chat completion: plan 0.13 ms, triggers 0.36 ms):

- The attempts' usage trigger ran for every insert, to count only unbilled
  outcomes: now a row trigger with ``WHEN (NEW.outcome <> 'ok')`` (``rollup.py``),
  which an answered call's attempt never fires.
- Each row checked and share-locked its tenant's row (``FOR KEY SHARE``), as the job
  had already done: every job of a tenant locked the same row three times. An
  attempt and a ledger row always belong to a job (a foreign key, kept) whose tenant
  they copy, so their own foreign keys to ``tenants`` are dropped (on Postgres; SQLite
  keeps them, which changes nothing there).
- ``ix_ledger_batch`` indexed every ledger row for its ``batch_id``, which only a
  batch's rows have: now partial on ``batch_id IS NOT NULL``. The index is rebuilt in
  the migration's transaction, which holds writes to ``cost_ledger`` meanwhile: on a
  large ledger, run it in a maintenance window (as 0015 for ``jobs``).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 21:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orchestrator.store.rollup import PG_ATTEMPT_ROWS, PG_ATTEMPTS_STATEMENT

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

TENANT_KEYS = {"attempts": "attempts_tenant_id_fkey", "cost_ledger": "cost_ledger_tenant_id_fkey"}


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.drop_index("ix_ledger_batch", table_name="cost_ledger")
    where = sa.text("batch_id IS NOT NULL")
    op.create_index(
        "ix_ledger_batch", "cost_ledger", ["batch_id"], postgresql_where=where, sqlite_where=where
    )
    if not _postgres():
        return
    op.execute(PG_ATTEMPT_ROWS)
    for table, name in TENANT_KEYS.items():
        op.drop_constraint(name, table, type_="foreignkey")


def downgrade() -> None:
    op.drop_index("ix_ledger_batch", table_name="cost_ledger")
    op.create_index("ix_ledger_batch", "cost_ledger", ["batch_id"])
    if not _postgres():
        return
    op.execute(PG_ATTEMPTS_STATEMENT)
    for table, name in TENANT_KEYS.items():
        op.create_foreign_key(name, table, "tenants", ["tenant_id"], ["id"])
