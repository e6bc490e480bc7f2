"""The outbox: notification events written in the same transaction as their cause."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, text
from sqlmodel import Field, SQLModel

from service.storage.types import UTCDateTime, new_id, utcnow

__all__ = ["EVENT_KINDS", "QUEUED", "OutboxEvent"]

EVENT_KINDS = ("arrival", "returned", "recall", "overdue_reminder", "overdue_parent", "mail_failed")

# The events still to be sent: the predicate of the ``ix_outbox_queue`` partial index.
# The worker's claim names it word for word (literal values, not parameters): only then
# may SQLite use the index, which reads the next batch in claiming order instead of
# sorting every due event. Written with OR, not IN: SQLite evaluates the predicate for
# every row written, and an IN list costs it a temporary table each time (an insert
# 18.7 → 12.4 µs, a change of state 68 → 8 µs; migration 0005).
QUEUED = "(state = 'pending' OR state = 'deferred' OR state = 'sending')"


class OutboxEvent(SQLModel, table=True):
    """A notification that is due: to ``unit_id``'s mailboxes, about a document.

    The mail worker leases pending rows (``lease_owner``/``lease_until``), sends
    them, and moves ``state`` to ``sent``, ``deferred`` or ``failed``.
    """

    __tablename__ = "outbox_event"
    __table_args__ = (
        Index("ix_outbox_queue", text("priority DESC"), "next_attempt_at", sqlite_where=text(QUEUED),
              postgresql_where=text(QUEUED)),
        # What was already said about a delivery (the overdue sweep asks it of every late one).
        Index("ix_outbox_delivery", "delivery_id", "kind"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    kind: str = Field(max_length=30)
    unit_id: str = Field(foreign_key="unit.id", index=True)
    document_id: str | None = Field(default=None, foreign_key="document.id")
    delivery_id: str | None = Field(default=None, foreign_key="delivery.id")
    # Higher first: the document's urgency (0 normal … 3 hỏa tốc).
    priority: int = 0
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    state: str = Field(default="pending", max_length=20)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str = Field(default="", max_length=2000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
