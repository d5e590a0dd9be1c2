"""provider batch lines: how many provider batches gave the line no answer (issue 26)

A line that failed at the provider (retryably), or whose provider batch expired or
was cancelled there, waits for the next provider batch of its deployment, at the
batch price, while ``tries`` is under ``provider_batch_max_tries`` and its job's
time to run synchronously is far enough away (``workers.batch_collect``).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-10 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "provider_batch_lines",
        sa.Column("tries", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    with op.batch_alter_table("provider_batch_lines") as batch:
        batch.drop_column("tries")
