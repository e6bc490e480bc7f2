"""outbox: the queue index's predicate written with OR instead of IN

Same rows, same order. SQLite evaluates a partial index's predicate for every row
inserted or changed, and an IN list costs it a temporary table each time: a send to
10,000 units writes 10,000 events, and the mail worker changes the state of each one
twice (claimed, then sent).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_IN = sa.text("state IN ('pending', 'deferred', 'sending')")
_OR = sa.text("(state = 'pending' OR state = 'deferred' OR state = 'sending')")


def _recreate(predicate: sa.TextClause) -> None:
    op.drop_index("ix_outbox_queue", table_name="outbox_event")
    op.create_index("ix_outbox_queue", "outbox_event", [sa.text("priority DESC"), "next_attempt_at"],
                    sqlite_where=predicate, postgresql_where=predicate)


def upgrade() -> None:
    _recreate(_OR)


def downgrade() -> None:
    _recreate(_IN)
