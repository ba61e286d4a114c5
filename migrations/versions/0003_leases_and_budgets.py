"""Leases (one process per tenant), the shared upload budget of each bot, and who ran a run.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("tenant", sa.String(100), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("token", sa.Integer, nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "bot_budgets",
        sa.Column("bot", sa.String(300), primary_key=True),
    )
    op.create_table(
        "bot_uploads",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("bot", sa.String(300), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_bot_uploads_bot_at", "bot_uploads", ["bot", "at"])
    with op.batch_alter_table("runs") as runs:
        runs.add_column(sa.Column("holder", sa.String(200)))


def downgrade() -> None:
    with op.batch_alter_table("runs") as runs:
        runs.drop_column("holder")
    op.drop_index("ix_bot_uploads_bot_at", table_name="bot_uploads")
    op.drop_table("bot_uploads")
    op.drop_table("bot_budgets")
    op.drop_table("leases")
