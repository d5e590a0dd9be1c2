"""A/B experiments of routing strategies (issue 11)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def _tenant() -> sa.Column[str]:
    return sa.Column(
        "tenant_id", sa.String(40), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.String(40), primary_key=True),
        _tenant(),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("tiers", sa.JSON(), nullable=True),
        sa.Column("control", sa.String(64), nullable=False),
        sa.Column("arms", sa.JSON(), nullable=False),
        sa.Column("guardrail", sa.JSON(), nullable=False),
        sa.Column("judge_share", sa.Float(), nullable=False),
        sa.Column("paused", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("stopped_at", WHEN, nullable=True),
        sa.UniqueConstraint("tenant_id", "name", name="uq_experiment_tenant_name"),
    )
    op.create_index("ix_experiments_tenant_status", "experiments", ["tenant_id", "status"])
    op.create_table(
        "job_feedback",
        sa.Column("id", sa.String(40), primary_key=True),
        _tenant(),
        sa.Column(
            "job_id", sa.String(40), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.create_index("ix_job_feedback_job_id", "job_feedback", ["job_id"])
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("experiment_id", sa.String(40), nullable=True))
        batch_op.add_column(sa.Column("experiment_arm", sa.String(64), nullable=True))
        batch_op.create_index("ix_jobs_experiment_arm", ["experiment_id", "experiment_arm"])


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_experiment_arm")
        batch_op.drop_column("experiment_arm")
        batch_op.drop_column("experiment_id")
    op.drop_index("ix_job_feedback_job_id", table_name="job_feedback")
    op.drop_table("job_feedback")
    op.drop_index("ix_experiments_tenant_status", table_name="experiments")
    op.drop_table("experiments")
