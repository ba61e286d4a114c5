"""What was sent for each delivered number, and how the number became ours.

``origin`` is ``created`` (Kore's answer to our upload), ``adopted`` (created by an earlier try
of ours whose answer was lost), ``found`` (Kore had it before we sent it) or ``legacy`` (recorded
before this migration, when the difference was not kept). The six columns let ``reconcile``
re-create a contact exactly as it was sent.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_VALUES = ("first_name", "last_name", "salutation", "number", "country_code", "extension")


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as table:
        table.add_column(sa.Column("origin", sa.String(10), nullable=True))
        for name in _VALUES:
            table.add_column(sa.Column(name, sa.Text, nullable=True))
    op.execute("UPDATE deliveries SET origin = 'legacy'")
    with op.batch_alter_table("deliveries") as table:
        table.alter_column("origin", existing_type=sa.String(10), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as table:
        for name in (*_VALUES, "origin"):
            table.drop_column(name)
