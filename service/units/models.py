"""Tables of the unit tree, its people and their API tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from service.storage.types import UTCDateTime, new_id, utcnow
from service.text import fold

__all__ = ["ApiToken", "Unit", "User", "name_key"]

_NAME_MAX = 300


def name_key(name: str) -> str:
    """``Unit.name_folded``: the name as two units' names are compared (folded; a compatibility
    form such as a fullwidth letter may fold to more than one letter, so cut to the column)."""
    return fold(name)[:_NAME_MAX]


class Unit(SQLModel, table=True):
    """A body of the organisation: a node of a tree of any depth."""

    __tablename__ = "unit"
    __table_args__ = (Index("ix_unit_path", "path"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    code: str = Field(unique=True, index=True, max_length=64)
    name: str = Field(max_length=_NAME_MAX)
    name_folded: str = Field(default="", max_length=_NAME_MAX)
    level: str = Field(max_length=100)
    parent_id: str | None = Field(default=None, foreign_key="unit.id", index=True)
    # "/<root id>/…/<own id>/": subtree queries are a prefix match.
    path: str = Field(default="", max_length=4000)
    depth: int = 0
    mailboxes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    has_seal: bool = False
    # The red seal image (PNG, transparent), a blob; a clean one is drawn when absent.
    seal_image_sha: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class User(SQLModel, table=True):
    """A person (or an integration) acting for one unit."""

    __tablename__ = "app_user"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    unit_id: str = Field(foreign_key="unit.id", index=True)
    username: str = Field(unique=True, max_length=200)
    full_name: str = Field(max_length=300)
    position: str = Field(default="", max_length=300)
    email: str = Field(default="", max_length=320)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Auditors read the subtree rooted here; None means their own unit's subtree.
    audit_root_id: str | None = Field(default=None, foreign_key="unit.id")
    is_service: bool = False
    active: bool = True
    # The blue handwritten-signature image (PNG, transparent), a blob.
    signature_image_sha: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ApiToken(SQLModel, table=True):
    """A bearer token; only its SHA-256 is kept."""

    __tablename__ = "api_token"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    user_id: str = Field(foreign_key="app_user.id", index=True)
    token_hash: str = Field(unique=True, max_length=64)
    label: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
