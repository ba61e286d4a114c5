"""The source row each delivered number was last seen in, by hash.

A row whose hash (its cells and the mapping that read them) is recorded beside a number delivered
with exactly that row's values is unchanged since: a later export need not map it again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as table:
        table.add_column(sa.Column("row_hash", sa.String(32), nullable=True))
    op.create_index("ix_deliveries_tenant_row_hash", "deliveries", ["tenant", "row_hash"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_tenant_row_hash", "deliveries")
    with op.batch_alter_table("deliveries") as table:
        table.drop_column("row_hash")
