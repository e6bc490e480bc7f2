"""Operations on notifications for the API and the CLI: list, show, retry, cancel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.documents.models import Document
from service.outbox.models import OutboxEvent
from service.storage.types import utcnow
from service.text import echo
from service.units.models import Unit

from . import repository as repo
from .audit_hook import audit_append
from .errors import NotificationNotFound, NotificationStateError
from .messages import unaddressable
from .models import MailAttempt, MailRecipient

__all__ = ["NotificationDetail", "Scope", "cancel_notification", "get_notification", "list_notifications",
           "retry_notification"]

_OPEN = ("pending", "deferred")


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose notifications the caller may see: a unit, or a subtree by path prefix. None: all (CLI)."""

    unit_id: str | None
    subtree_path: str | None = None


@dataclass(frozen=True, slots=True)
class NotificationDetail:
    event: OutboxEvent
    recipients: list[MailRecipient]
    attempts: list[MailAttempt]


async def _visible_units(session: AsyncSession, scope: Scope) -> ColumnElement[bool]:
    """One rule: events to the caller's unit(s), or about documents the caller's unit(s) sent."""
    if scope.unit_id is None:
        return true()
    if scope.subtree_path:
        units = select(col(Unit.id)).where(col(Unit.path).startswith(scope.subtree_path))
    else:
        units = select(col(Unit.id)).where(col(Unit.id) == scope.unit_id)
    sent_docs = select(col(Document.id)).where(col(Document.sender_unit_id).in_(units))
    return or_(col(OutboxEvent.unit_id).in_(units), col(OutboxEvent.document_id).in_(sent_docs))


async def list_notifications(
    session: AsyncSession, scope: Scope, *, state: str | None = None, limit: int = 100, before: datetime | None = None
) -> list[OutboxEvent]:
    """Newest first; ``state`` filters (e.g. 'failed'). Default: everything not yet sent."""
    query = select(OutboxEvent).where(await _visible_units(session, scope))
    if state:
        query = query.where(col(OutboxEvent.state) == state)
    else:
        query = query.where(col(OutboxEvent.state).in_(("pending", "sending", "deferred", "failed")))
    if before is not None:
        query = query.where(col(OutboxEvent.created_at) < before)
    rows = await session.execute(query.order_by(col(OutboxEvent.created_at).desc()).limit(limit))
    return list(rows.scalars())


async def _visible_event(session: AsyncSession, scope: Scope, event_id: str) -> OutboxEvent:
    rows = await session.execute(
        select(OutboxEvent).where(col(OutboxEvent.id) == event_id, await _visible_units(session, scope))
    )
    event = rows.scalars().first()
    if event is None:
        raise NotificationNotFound(f"notification {echo(event_id)} not found")
    return event


async def get_notification(session: AsyncSession, scope: Scope, event_id: str) -> NotificationDetail:
    """The event, its recipients and every server answer. Raises NotificationNotFound."""
    event = await _visible_event(session, scope, event_id)
    recipients = (await repo.recipients_by_event(session, [event.id])).get(event.id, [])
    return NotificationDetail(event, recipients, await repo.attempts_of(session, event.id))


async def retry_notification(session: AsyncSession, scope: Scope, event_id: str,
                             actor_id: str | None = None) -> OutboxEvent:
    """Send the unsent recipients again now, with a fresh lifetime.

    Raises NotificationNotFound, NotificationStateError (already sent or being sent).
    """
    event = await _visible_event(session, scope, event_id)
    if event.state in ("sent", "sending"):
        raise NotificationStateError(f"notification {event_id} is {event.state}")
    now = utcnow()
    for r in (await repo.recipients_by_event(session, [event.id])).get(event.id, []):
        if r.state != "sent" and not unaddressable(r.address):  # no retry makes a broken address work
            r.state, r.next_attempt_at, r.created_at, r.updated_at = "pending", now, now, now
    event.state, event.next_attempt_at, event.updated_at = "pending", now, now
    event.lease_owner = event.lease_until = None
    await session.flush()
    await audit_append(session, action="notification.retried", actor_id=actor_id, unit_id=event.unit_id,
                       document_id=event.document_id, object_id=event.id, data={"kind": event.kind})
    return event


async def cancel_notification(session: AsyncSession, scope: Scope, event_id: str,
                              actor_id: str | None = None) -> OutboxEvent:
    """Stop trying. Raises NotificationNotFound, NotificationStateError (already sent)."""
    event = await _visible_event(session, scope, event_id)
    if event.state in ("sent", "cancelled"):
        raise NotificationStateError(f"notification {event_id} is {event.state}")
    now = utcnow()
    for r in (await repo.recipients_by_event(session, [event.id])).get(event.id, []):
        if r.state in _OPEN:
            r.state, r.updated_at = "cancelled", now
    event.state, event.updated_at = "cancelled", now
    await session.flush()
    await audit_append(session, action="notification.cancelled", actor_id=actor_id, unit_id=event.unit_id,
                       document_id=event.document_id, object_id=event.id, data={"kind": event.kind})
    return event
