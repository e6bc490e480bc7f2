"""Tables of documents, their files, and the per-recipient deliveries."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.storage.types import UTCDateTime, new_id, utcnow

__all__ = [
    "Attachment",
    "Delivery",
    "DeliveryEvent",
    "Document",
    "DocumentSignature",
    "ExternalSigningSession",
    "IdempotencyRecord",
    "VerificationRecord",
]


class Document(SQLModel, table=True):
    """An official document registered by its sending unit."""

    __tablename__ = "document"
    __table_args__ = (
        UniqueConstraint("sender_unit_id", "dedup_key", name="uq_document_dedup"),
        Index("ix_document_outbox", "sender_unit_id", "created_at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    sender_unit_id: str = Field(foreign_key="unit.id")
    created_by: str = Field(foreign_key="app_user.id")
    number: str = Field(max_length=20)
    notation: str = Field(max_length=100)
    number_notation: str = Field(max_length=150)
    issuer: str = Field(max_length=100)
    dedup_key: str = Field(max_length=200)
    doc_type: str = Field(max_length=100)
    issued_on: date
    place: str = Field(default="", max_length=200)
    subject: str = Field(max_length=2000)
    search_text: str = Field(default="", max_length=2500)
    search_folded: str = Field(default="", max_length=2500)
    signer_name: str = Field(default="", max_length=300)
    signer_position: str = Field(default="", max_length=300)
    urgency: int = 0
    deadline: date | None = None
    recipients_text: str = Field(default="", max_length=4000)
    filename: str = Field(max_length=255)
    sha256: str = Field(max_length=64)
    size: int
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    recalled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Attachment(SQLModel, table=True):
    """A separate file that travels with a document."""

    __tablename__ = "attachment"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    document_id: str = Field(foreign_key="document.id", index=True)
    filename: str = Field(max_length=255)
    content_type: str = Field(max_length=100)
    sha256: str = Field(max_length=64)
    size: int


class Delivery(SQLModel, table=True):
    """One document at one recipient unit, with its handling status."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("document_id", "recipient_unit_id", name="uq_delivery_recipient"),
        Index("ix_delivery_inbox", "recipient_unit_id", "urgency", "created_at"),
        Index("ix_delivery_document", "document_id", "status"),
        # One incoming book per unit and year: a number is given once (see handling.incoming_key).
        Index("uq_delivery_incoming", "recipient_unit_id", "incoming_key", unique=True),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    document_id: str = Field(foreign_key="document.id")
    recipient_unit_id: str = Field(foreign_key="unit.id")
    from_unit_id: str = Field(foreign_key="unit.id")
    parent_delivery_id: str | None = Field(default=None, foreign_key="delivery.id")
    # Unit ids from the original sender to this recipient.
    hops: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="01", max_length=2)
    status_before_recall: str | None = Field(default=None, max_length=2)
    urgency: int = 0
    incoming_number: str | None = Field(default=None, max_length=50)
    incoming_key: str | None = Field(default=None, max_length=80)  # year and SHA-256 of the number as compared
    assignee: str | None = Field(default=None, max_length=300)
    note: str = Field(default="", max_length=2000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    registered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class DeliveryEvent(SQLModel, table=True):
    """One status change of a delivery: who, when, why."""

    __tablename__ = "delivery_event"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    delivery_id: str = Field(foreign_key="delivery.id", index=True)
    status: str = Field(max_length=2)
    actor_id: str | None = Field(default=None, foreign_key="app_user.id")
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    note: str = Field(default="", max_length=2000)


class IdempotencyRecord(SQLModel, table=True):
    """The first answer to a request that carried an Idempotency-Key."""

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotency_key"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    user_id: str = Field(foreign_key="app_user.id")
    key: str = Field(max_length=200)
    fingerprint: str = Field(max_length=64)
    status_code: int
    body: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DocumentSignature(SQLModel, table=True):
    """A signature applied to a document by the service (personal or seal)."""

    __tablename__ = "document_signature"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    document_id: str = Field(foreign_key="document.id", index=True)
    kind: str = Field(max_length=20)  # personal | organisation | attachment
    field_name: str = Field(max_length=200)
    signer_user_id: str | None = Field(default=None, foreign_key="app_user.id")
    unit_id: str = Field(foreign_key="unit.id")
    level: str = Field(default="B-T", max_length=10)
    sha256_before: str = Field(max_length=64)
    sha256_after: str = Field(max_length=64)
    signed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SigningSessionBase(SQLModel):
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    document_id: str = Field(foreign_key="document.id", index=True)
    user_id: str = Field(foreign_key="app_user.id")
    sha256_before: str = Field(max_length=64)
    state: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class VerificationRecord(SQLModel, table=True):
    """A verification report of one exact file (by hash)."""

    __tablename__ = "verification_record"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    document_id: str | None = Field(default=None, foreign_key="document.id", index=True)
    sha256: str = Field(max_length=64, index=True)
    verdict: str = Field(max_length=20)
    # The verdict rules it was made under (service.signing.RULES_VERSION); 0: before they were numbered.
    rules_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    report: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ExternalSigningSession(SigningSessionBase, table=True):
    """A two-step signature in progress: prepared here, signed on the signer's token."""

    __tablename__ = "external_signing_session"
