"""The source record each delivered number was sent from (the mapping's ``id``).

A snapshot with rows whose number could not be read judges removals by record id: such a row
holds back only the contacts delivered from its record. Numbers recorded before this migration
have no record id, and their remembered rows are forgotten so that the next export maps every
row once more (sending nothing it need not) and records the ids of the contacts it still has.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as table:
        table.add_column(sa.Column("record_id", sa.Text, nullable=True))
    op.execute("UPDATE deliveries SET row_hash = NULL")


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as table:
        table.drop_column("record_id")
