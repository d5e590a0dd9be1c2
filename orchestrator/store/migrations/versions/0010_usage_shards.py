"""usage_daily rows spread over shards (issue 5)

Every worker's finishing transaction upserts the ``usage_daily`` row of its
tenant, day, tier and deployment (the ledger trigger, 0006) and holds that
row's lock until it commits: with one row per key, concurrent finishes queued
behind each other (``Lock:transactionid`` in ``pg_stat_activity`` under
``switchyard bench latency``). On Postgres each key now has up to
``rollup.SHARDS`` rows, one per writing connection (its backend pid modulo
SHARDS), and readers sum them as before. SQLite (one writer at a time) writes
shard 0 only: the column and a unique index on the new key, its triggers
rewritten for it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 20:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orchestrator.store.rollup import (
    KEY,
    KEY_0006,
    SQLITE_TRIGGERS,
    SUMS,
    pg_attempts_function,
    pg_ledger_function,
)

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SQLITE_KEY_INDEX = "ux_usage_daily_key"


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _drop_sqlite_triggers() -> None:
    for name in SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")


def upgrade() -> None:
    op.add_column(
        "usage_daily", sa.Column("shard", sa.SmallInteger(), nullable=False, server_default="0")
    )
    if _postgres():
        op.execute(
            f"ALTER TABLE usage_daily DROP CONSTRAINT usage_daily_pkey, ADD PRIMARY KEY ({KEY})"
        )
        op.execute(pg_ledger_function())
        op.execute(pg_attempts_function())
    else:
        op.create_index(SQLITE_KEY_INDEX, "usage_daily", KEY.split(", "), unique=True)
        _drop_sqlite_triggers()
        for ddl in SQLITE_TRIGGERS.values():
            op.execute(ddl)


def downgrade() -> None:
    """Fold the shards into one row a key, then 0006's key and trigger bodies."""
    totals = ", ".join(f"sum({c}) AS {c}" for c in SUMS.split(", "))
    op.execute(
        f"CREATE TABLE usage_daily_folded AS SELECT {KEY_0006}, {totals}"
        f" FROM usage_daily GROUP BY {KEY_0006}"
    )
    op.execute("DELETE FROM usage_daily")
    if _postgres():
        op.execute(pg_ledger_function(sharded=False))
        op.execute(pg_attempts_function(sharded=False))
        op.execute(
            "ALTER TABLE usage_daily DROP CONSTRAINT usage_daily_pkey,"
            f" ADD PRIMARY KEY ({KEY_0006})"
        )
        op.drop_column("usage_daily", "shard")
    else:  # SQLite: env.py puts 0006's triggers back after the rebuild
        _drop_sqlite_triggers()
        op.drop_index(SQLITE_KEY_INDEX, table_name="usage_daily")
        with op.batch_alter_table("usage_daily", schema=None) as batch_op:
            batch_op.drop_column("shard")
    op.execute(f"INSERT INTO usage_daily ({KEY_0006}, {SUMS}) SELECT * FROM usage_daily_folded")
    op.execute("DROP TABLE usage_daily_folded")
