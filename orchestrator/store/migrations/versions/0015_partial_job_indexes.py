"""jobs: partial indexes, so a job's status changes write fewer index entries (issue 24)

Every status change of a job is a new row version, and a new version gets an entry
in every index of the table whose predicate it meets. Six indexes served only some
versions: a lease is looked up only on running jobs, a due time only on waiting
ones, a deadline only where there is one, a batch or an experiment arm only on jobs
in one. Each is now partial on that condition.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 07:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

PARTIAL = {
    "ix_jobs_batch_status": (("batch_id", "status"), "batch_id IS NOT NULL"),
    "ix_jobs_batch_index": (("batch_id", "batch_index"), "batch_id IS NOT NULL"),
    "ix_jobs_status_lease": (("status", "lease_expires_at"), "status = 'running'"),
    "ix_jobs_status_next": (("status", "next_attempt_at"), "status IN ('queued', 'retrying')"),
    "ix_jobs_status_deadline": (("status", "deadline_at"), "deadline_at IS NOT NULL"),
    "ix_jobs_experiment_arm": (
        ("experiment_id", "experiment_arm"),
        "experiment_id IS NOT NULL",
    ),
}


def upgrade() -> None:
    for name, (columns, where) in PARTIAL.items():
        op.drop_index(name, table_name="jobs")
        op.create_index(
            name,
            "jobs",
            list(columns),
            postgresql_where=sa.text(where),
            sqlite_where=sa.text(where),
        )


def downgrade() -> None:
    for name, (columns, _where) in PARTIAL.items():
        op.drop_index(name, table_name="jobs")
        op.create_index(name, "jobs", list(columns))
