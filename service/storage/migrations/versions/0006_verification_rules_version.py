"""verification_record: the verdict rules each report was made under

A report stored under older rules (0: before they were numbered) is made again the next
time it is read or its document is sent; the old one stays, as the audit log refers to it.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("verification_record") as batch_op:
        batch_op.add_column(sa.Column("rules_version", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("verification_record") as batch_op:
        batch_op.drop_column("rules_version")
