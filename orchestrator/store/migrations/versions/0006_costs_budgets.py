"""cost optimizer, budgets and usage (issue 8)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 17:00:00.000000
"""

from __future__ import annotations

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
