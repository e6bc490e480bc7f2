"""The mail package's tables: one row per (event, address), one per SMTP attempt."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.storage.types import UTCDateTime, new_id, utcnow

__all__ = ["RECIPIENT_STATES", "MailAttempt", "MailRecipient"]

RECIPIENT_STATES = ("pending", "deferred", "sent", "failed", "cancelled")


class MailRecipient(SQLModel, table=True):
    """One mailbox to notify about one outbox event; retried on its own."""

    __tablename__ = "mail_recipient"
    __table_args__ = (
        UniqueConstraint("event_id", "address", name="uq_mail_recipient"),
        Index("ix_mail_recipient_event", "event_id", "state"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    event_id: str = Field(foreign_key="outbox_event.id", max_length=32)
    address: str = Field(max_length=320)
    # Stable across resends: a retry after an ambiguous failure carries the same id.
    message_id: str = Field(max_length=200)
    state: str = Field(default="pending", max_length=20)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_code: int = 0
    last_reply: str = Field(default="", max_length=1000)
    without_attachment: bool = False
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class MailAttempt(SQLModel, table=True):
    """One server answer about one address: the evidence shown to operators."""

    __tablename__ = "mail_attempt"
    __table_args__ = (Index("ix_mail_attempt_event", "event_id", "at"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    event_id: str = Field(foreign_key="outbox_event.id", max_length=32)
    address: str = Field(max_length=320)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    stage: str = Field(default="", max_length=20)
    code: int = 0
    reply: str = Field(default="", max_length=1000)
    worker: str = Field(default="", max_length=100)
