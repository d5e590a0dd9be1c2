"""interfaces: uploaded files, OpenAI batch fields, webhooks, tenant limits

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PENDING = "callback_url IS NOT NULL AND notified_at IS NULL"
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.String(60), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.String(40),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.create_index("ix_files_tenant_created", "files", ["tenant_id", "created_at"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.String(40),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("object_id", sa.String(40), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", WHEN, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("delivered_at", WHEN, nullable=True),
        sa.UniqueConstraint("kind", "object_id", name="uq_webhook_object"),
    )
    op.create_index("ix_webhook_status_next", "webhook_deliveries", ["status", "next_attempt_at"])
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("webhook_secret", sa.String(80), nullable=True))
        batch_op.add_column(sa.Column("rate_limit_rpm", sa.Integer(), nullable=True))
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("input_file_id", sa.String(60), nullable=True))
        batch_op.add_column(
            sa.Column("endpoint", sa.String(60), nullable=False, server_default="/v1/jobs")
        )
        batch_op.add_column(
            sa.Column("completion_window", sa.String(16), nullable=False, server_default="24h")
        )
        batch_op.add_column(sa.Column("metadata", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("rejected", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("callback_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("cancelled_at", WHEN, nullable=True))
        batch_op.add_column(sa.Column("notified_at", WHEN, nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("callback_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("notified_at", WHEN, nullable=True))
    op.create_index(
        "ix_jobs_webhook_pending",
        "jobs",
        ["status"],
        postgresql_where=sa.text(PENDING),
        sqlite_where=sa.text(PENDING),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_webhook_pending", table_name="jobs")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("notified_at")
        batch_op.drop_column("callback_url")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        for column in (
            "notified_at",
            "cancelled_at",
            "callback_url",
            "rejected",
            "metadata",
            "completion_window",
            "endpoint",
            "input_file_id",
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("rate_limit_rpm")
        batch_op.drop_column("webhook_secret")
    op.drop_index("ix_webhook_status_next", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_files_tenant_created", table_name="files")
    op.drop_table("files")
