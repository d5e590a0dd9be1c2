"""budget holds on job rows (issue 22)

Each job row says how much of its tenant's budget reservation it still holds
(``budget_held_micro_usd``: under the holder its batch or itself names in
Redis; a pipeline's parent holds for all its steps) and how much of its cost the
Redis spend counters already count (``budget_counted_micro_usd``). Settling a
job is then a compare of those two with ``cost_micro_usd`` under the row's lock,
so any number of settlers (the worker, a cancel, the reconciler) count each
micro-dollar once and release each reservation once (COSTS.md).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

COLUMNS = ("budget_held_micro_usd", "budget_counted_micro_usd")


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.add_column(
                sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
            )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
