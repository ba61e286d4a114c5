"""Known rows: source rows that were rejected or lost a duplicate contest, by their hash, so
that the next export does not map them again.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "known_rows",
        sa.Column("tenant", sa.String(100), primary_key=True),
        sa.Column("row_hash", sa.String(32), primary_key=True),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("phone_key", sa.String(24)),
        sa.Column("rejection", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_known_rows_tenant_recorded", "known_rows", ["tenant", "recorded_at"])


def downgrade() -> None:
    op.drop_index("ix_known_rows_tenant_recorded", table_name="known_rows")
    op.drop_table("known_rows")
