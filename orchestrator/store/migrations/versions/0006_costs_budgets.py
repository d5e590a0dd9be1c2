"""cost optimizer, budgets and usage (issue 8)

Tenants get budgets (daily and monthly, integer micro-USD), a warning ratio and a
default routing objective; ledger rows an index by batch. ``usage_daily`` is a
rollup of the ledger (and of failed, unbilled attempts) per tenant, UTC day,
tier, deployment and kind (``billed``, ``cache_hit``, ``unbilled``), kept by
triggers on insert, so every writer (workers, bulk loads, other issues) keeps it
right and ``GET /v1/usage`` reads a few hundred rows instead of a million.

The ledger trigger reads ``cost_ledger.cache_hit`` (added by 0007): Postgres and
SQLite resolve a trigger's columns when it runs, and nothing inserts between 0006
and 0007. The trigger DDL lives in ``orchestrator.store.rollup``: on SQLite a later
migration that rebuilds a table drops its triggers, so ``env.py`` puts them back
after every upgrade.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orchestrator.store.rollup import PG_ATTEMPTS_0006, PG_LEDGER_0006, SQLITE_TRIGGERS

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _usage_table() -> None:
    op.create_table(
        "usage_daily",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("deployment", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("reasoning_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("cost_micro_usd", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint(
            "tenant_id", "day", "tier", "deployment", "provider", "model", "kind"
        ),
    )


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("budget_daily_micro_usd", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("budget_monthly_micro_usd", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("budget_warn_ratio", sa.Float(), nullable=False, server_default="0.8")
        )
        batch_op.add_column(sa.Column("objective", sa.String(16), nullable=True))
    op.create_index("ix_ledger_batch", "cost_ledger", ["batch_id"])
    _usage_table()
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_LEDGER_0006)
        op.execute(PG_ATTEMPTS_0006)
    else:
        for ddl in SQLITE_TRIGGERS.values():
            op.execute(ddl)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS attempts_usage ON attempts")
        op.execute("DROP TRIGGER IF EXISTS cost_ledger_usage ON cost_ledger")
        op.execute("DROP FUNCTION IF EXISTS switchyard_usage_from_attempts()")
        op.execute("DROP FUNCTION IF EXISTS switchyard_usage_from_ledger()")
    else:
        op.execute("DROP TRIGGER IF EXISTS attempts_usage")
        op.execute("DROP TRIGGER IF EXISTS cost_ledger_usage")
    op.drop_table("usage_daily")
    op.drop_index("ix_ledger_batch", table_name="cost_ledger")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        for column in (
            "objective",
            "budget_warn_ratio",
            "budget_monthly_micro_usd",
            "budget_daily_micro_usd",
        ):
            batch_op.drop_column(column)
