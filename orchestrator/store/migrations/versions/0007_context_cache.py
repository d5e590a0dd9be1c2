"""sessions, context and response cache (issue 9)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)
CACHE_HIT_TABLES = ("jobs", "attempts", "cost_ledger")


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column(
            "tenant_id",
            sa.String(40),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("system", sa.Text(), nullable=True),
        sa.Column("turns", sa.Integer(), nullable=False),
        sa.Column("last_deployment", sa.String(200), nullable=True),
        sa.Column("last_tier", sa.String(16), nullable=True),
        sa.Column("last_job_id", sa.String(40), nullable=True),
        sa.Column("context_start", sa.Integer(), nullable=False),
        sa.Column("context_window", sa.Integer(), nullable=False),
        sa.Column("token_ratio", sa.Float(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_table(
        "session_turns",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("session_id", sa.String(100), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.UniqueConstraint("tenant_id", "session_id", "seq", name="uq_session_turn_seq"),
    )
    op.create_index("ix_session_turns_job", "session_turns", ["tenant_id", "session_id", "job_id"])
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("response_cache", sa.String(8), nullable=True))
    for table in CACHE_HIT_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("cache_hit", sa.Boolean(), nullable=False, server_default=sa.false())
            )


def downgrade() -> None:
    for table in CACHE_HIT_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("cache_hit")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("response_cache")
    op.drop_index("ix_session_turns_job", table_name="session_turns")
    op.drop_table("session_turns")
    op.drop_table("sessions")
