"""pipelines, structured output and cascades (issue 10)

A pipeline job is a parent row; each of its steps is a job row of its own that
points at the parent (``parent_job_id``) with its position (``step_index``).
One step per position, so a step can never be created twice.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_job_id", sa.String(40), nullable=True))
        batch_op.add_column(sa.Column("step_index", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_jobs_parent_job_id", "jobs", ["parent_job_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_unique_constraint("uq_jobs_parent_step", ["parent_job_id", "step_index"])
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("strategy", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("strategy")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint("uq_jobs_parent_step", type_="unique")
        batch_op.drop_constraint("fk_jobs_parent_job_id", type_="foreignkey")
        batch_op.drop_column("step_index")
        batch_op.drop_column("parent_job_id")
