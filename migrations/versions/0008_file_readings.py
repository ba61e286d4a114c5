"""How each remembered file was read (its mapping, region and name limits, as a hash), so that
``check`` and ``sync`` can say when files were read with a mapping since changed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("processed_files") as table:
        table.add_column(sa.Column("reading", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("processed_files") as table:
        table.drop_column("reading")
