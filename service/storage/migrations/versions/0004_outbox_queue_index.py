"""outbox: the worker's queue as a partial index in claiming order

The claim took the due events through ``ix_outbox_due`` (state, priority, time) and
sorted all of them to keep the first batch; ``ix_outbox_queue`` holds only the events
still to be sent, already in claiming order (priority first, then time due).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_QUEUED = sa.text("state IN ('pending', 'deferred', 'sending')")


def upgrade() -> None:
    op.drop_index("ix_outbox_due", table_name="outbox_event")
    op.create_index("ix_outbox_queue", "outbox_event", [sa.text("priority DESC"), "next_attempt_at"],
                    sqlite_where=_QUEUED, postgresql_where=_QUEUED)


def downgrade() -> None:
    op.drop_index("ix_outbox_queue", table_name="outbox_event")
    op.create_index("ix_outbox_due", "outbox_event", ["state", "priority", "next_attempt_at"])
