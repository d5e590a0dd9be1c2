"""provider batch path: line state index, ledger path (issue 26)

``provider_batch_lines.state`` is what the reconciler's passes filter on alone
(lines waiting to be gathered, lines whose job left them, whether anything is
to do): it gets its own index. ``cost_ledger.path`` says which path a billed
call took (``sync`` or ``provider_batch``), so usage reports show the spend by
path and what the batch path saved; a partial index keeps the provider batch
rows of a tenant's window cheap to read (``orchestrator.costs.usage_reports``).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-09 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BATCH_ROWS = "path = 'provider_batch'"


def upgrade() -> None:
    op.create_index("ix_provider_batch_lines_state", "provider_batch_lines", ["state"])
    op.add_column(
        "cost_ledger", sa.Column("path", sa.String(16), nullable=False, server_default="sync")
    )
    op.create_index(
        "ix_ledger_provider_batch",
        "cost_ledger",
        ["tenant_id", "created_at"],
        postgresql_where=sa.text(BATCH_ROWS),
        sqlite_where=sa.text(BATCH_ROWS),
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_provider_batch", table_name="cost_ledger")
    with op.batch_alter_table("cost_ledger") as batch:
        batch.drop_column("path")
    op.drop_index("ix_provider_batch_lines_state", table_name="provider_batch_lines")
