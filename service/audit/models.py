"""The append-only, hash-chained audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column
from sqlmodel import Field, SQLModel

from service.storage.types import UTCDateTime, utcnow

__all__ = ["AuditEntry", "AuditHead"]


class AuditEntry(SQLModel, table=True):
    """One action. ``hash`` = SHA-256 over ``prev_hash`` and the entry's content."""

    __tablename__ = "audit_entry"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    actor_id: str | None = Field(default=None, max_length=32)
    unit_id: str | None = Field(default=None, max_length=32, index=True)
    action: str = Field(max_length=60)
    document_id: str | None = Field(default=None, max_length=32, index=True)
    object_id: str | None = Field(default=None, max_length=32)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """A single row holding the chain's tip; locked by every appender."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    hash: str = Field(default="0" * 64, max_length=64)
