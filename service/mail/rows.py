"""Plain rows of the worker's hot path: what a leased event needs, read as columns.

No ORM objects here: materialising an ``OutboxEvent`` or a ``Unit`` costs more CPU
than sending its message, and the worker shares the machine with the relay. The
worker's immutable per-message values (these, and ``Due``, ``Outcome``,
``OutgoingMessage``, ``RecipientResult``) are named tuples: a frozen dataclass sets
each field through ``object.__setattr__`` and costs about ten times more to build.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, NamedTuple

__all__ = ["ClaimedEvent", "DocumentInfo", "EventContext"]


class ClaimedEvent(NamedTuple):
    """The columns of a leased ``outbox_event`` the worker uses."""

    id: str
    kind: str
    unit_id: str
    document_id: str | None
    delivery_id: str | None
    priority: int
    payload: dict[str, Any]
    attempts: int
    next_attempt_at: datetime


class DocumentInfo(NamedTuple):
    """The columns of a ``document`` a notification shows or attaches."""

    id: str
    sender_unit_id: str
    number_notation: str
    subject: str
    urgency: int
    deadline: date | None
    filename: str
    sha256: str
    size: int


class EventContext(NamedTuple):
    """What the database knows about a leased event, read in one query per batch."""

    event: ClaimedEvent
    unit_name: str | None = None  # None: the unit is gone
    mailboxes: tuple[str, ...] = ()
    document: DocumentInfo | None = None
    sender_unit_name: str | None = None
    delivery_created_at: datetime | None = None
    delivery_unit_name: str | None = None
    verdict: str | None = None
