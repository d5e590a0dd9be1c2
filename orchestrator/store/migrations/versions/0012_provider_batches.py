"""provider batches and their lines (issue 26)

Jobs that may wait go through the providers' batch APIs at about half price.
``provider_batches`` holds each batch at a provider and the state of its
lifecycle (written before every external step); ``provider_batch_lines`` links
a job to the provider batch carrying it (``orchestrator.store.provider_batch_models``).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "provider_batches",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("deployment", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("provider_file_id", sa.String(200)),
        sa.Column("provider_batch_id", sa.String(200)),
        sa.Column("provider_status", sa.String(32)),
        sa.Column("output_file_id", sa.String(200)),
        sa.Column("error_file_id", sa.String(200)),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("submitted_at", WHEN),
        sa.Column("polled_at", WHEN),
        sa.Column("next_poll_at", WHEN),
        sa.Column("finished_at", WHEN),
        sa.Column("locked_until", WHEN),
    )
    op.create_index("ix_provider_batches_state_poll", "provider_batches", ["state", "next_poll_at"])
    op.create_table(
        "provider_batch_lines",
        sa.Column(
            "job_id",
            sa.String(40),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("deployment", sa.String(200), nullable=False),
        sa.Column("provider_batch_id", sa.String(40), sa.ForeignKey("provider_batches.id")),
        sa.Column("custom_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.create_index(
        "ix_provider_batch_lines_waiting", "provider_batch_lines", ["deployment", "state"]
    )
    op.create_index(
        "ix_provider_batch_lines_provider_batch_id", "provider_batch_lines", ["provider_batch_id"]
    )


def downgrade() -> None:
    op.drop_table("provider_batch_lines")
    op.drop_table("provider_batches")
