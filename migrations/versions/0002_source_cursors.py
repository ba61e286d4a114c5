"""Cursors of incremental SQL sources.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_cursors",
        sa.Column("tenant", sa.String(100), primary_key=True),
        sa.Column("source", sa.String(200), primary_key=True),
        sa.Column("position", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("source_cursors")
