"""execution guarantees: deadlines, retry schedule, delivery counts, progress

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TIMES = ("deadline_at", "next_attempt_at", "requeued_at")
COUNTS = ("deliveries", "lease_expiries", "redrives")


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for column in TIMES:
            batch_op.add_column(sa.Column(column, sa.DateTime(timezone=True), nullable=True))
        for column in COUNTS:
            batch_op.add_column(sa.Column(column, sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("progress", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.create_index("ix_jobs_status_next", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_jobs_status_deadline", ["status", "deadline_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_status_deadline")
        batch_op.drop_index("ix_jobs_status_next")
        batch_op.drop_column("progress")
        for column in reversed(COUNTS):
            batch_op.drop_column(column)
        for column in reversed(TIMES):
            batch_op.drop_column(column)
