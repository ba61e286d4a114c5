"""History that does not pile up: a run that finds nothing new leaves no ``runs`` row, only the
time of its check on the tenant's lease row (``leases.checked_at``); old runs and settled batches
are pruned by age, found through indexes on their times.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leases") as table:
        table.add_column(sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_runs_started", "runs", ["started_at"])
    op.create_index("ix_batches_settled", "batches", ["settled_at"])


def downgrade() -> None:
    op.drop_index("ix_batches_settled", table_name="batches")
    op.drop_index("ix_runs_started", table_name="runs")
    with op.batch_alter_table("leases") as table:
        table.drop_column("checked_at")
