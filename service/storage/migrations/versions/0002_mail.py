"""mail relay: per-recipient state and the attempt log

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.storage.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_UTC = service.storage.types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "mail_recipient",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _UTC(), nullable=False),
        sa.Column("last_code", sa.Integer(), nullable=False),
        sa.Column("last_reply", sa.String(length=1000), nullable=False),
        sa.Column("without_attachment", sa.Boolean(), nullable=False),
        sa.Column("sent_at", _UTC(), nullable=True),
        sa.Column("created_at", _UTC(), nullable=False),
        sa.Column("updated_at", _UTC(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["outbox_event.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", "address", name="uq_mail_recipient"),
    )
    op.create_index("ix_mail_recipient_event", "mail_recipient", ["event_id", "state"])
    op.create_table(
        "mail_attempt",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("at", _UTC(), nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("reply", sa.String(length=1000), nullable=False),
        sa.Column("worker", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["outbox_event.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_mail_attempt_event", "mail_attempt", ["event_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_mail_attempt_event", table_name="mail_attempt")
    op.drop_table("mail_attempt")
    op.drop_index("ix_mail_recipient_event", table_name="mail_recipient")
    op.drop_table("mail_recipient")
