"""State for core sync: runs, delivered keys, in-flight batches, processed files.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("counters", sa.Text, nullable=False),
    )
    op.create_index("ix_runs_tenant_started", "runs", ["tenant", "started_at"])
    op.create_table(
        "deliveries",
        sa.Column("tenant", sa.String(100), primary_key=True),
        sa.Column("phone_key", sa.String(24), primary_key=True),
        sa.Column("kore_id", sa.String(64)),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "batches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_batches_tenant_status", "batches", ["tenant", "status"])
    op.create_table(
        "batch_rows",
        sa.Column(
            "batch_id",
            sa.Integer,
            sa.ForeignKey("batches.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("phone_key", sa.String(24), nullable=False),
        sa.Column("first_name", sa.Text, nullable=False),
        sa.Column("last_name", sa.Text, nullable=False),
        sa.Column("salutation", sa.Text, nullable=False),
        sa.Column("number", sa.String(24), nullable=False),
        sa.Column("country_code", sa.String(8), nullable=False),
        sa.Column("extension", sa.String(16), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("row_no", sa.Integer, nullable=False),
        sa.Column("record_id", sa.Text, nullable=False),
    )
    op.create_table(
        "processed_files",
        sa.Column("tenant", sa.String(100), primary_key=True),
        sa.Column("content_hash", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("processed_files")
    op.drop_table("batch_rows")
    op.drop_index("ix_batches_tenant_status", "batches")
    op.drop_table("batches")
    op.drop_table("deliveries")
    op.drop_index("ix_runs_tenant_started", "runs")
    op.drop_table("runs")
