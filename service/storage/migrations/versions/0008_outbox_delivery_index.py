"""outbox: an index on (delivery_id, kind)

The overdue sweep asks, for every delivery still at 01, whether a reminder or an
escalation was already queued; without this index each question read the whole
outbox, and after one send to 20,000 branches a sweep held the process for a minute.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_outbox_delivery", "outbox_event", ["delivery_id", "kind"])


def downgrade() -> None:
    op.drop_index("ix_outbox_delivery", table_name="outbox_event")
