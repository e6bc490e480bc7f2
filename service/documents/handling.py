"""A receiver's handling steps on one delivery (02–06, 15, 16)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service import audit
from service.auth import Principal
from service.documents.access import require_role, visible_delivery
from service.documents.models import Delivery, DeliveryEvent, Document
from service.documents.schemas import StatusChange
from service.documents.sending import notification_payload
from service.documents.statuses import check_transition
from service.outbox.models import OutboxEvent
from service.storage.types import utcnow
from service.text import nfc
from service.units import Unit

__all__ = ["change_status"]

# Which steps tell the sending unit's mailboxes, and as what.
_NOTIFY_SENDER = {"02": "returned"}


async def change_status(session: AsyncSession, principal: Principal, delivery_id: str,
                        change: StatusChange) -> Delivery:
    """Apply a receiver's step. Raises DocumentNotFoundError, InvalidTransitionError, InvalidInputError."""
    require_role(principal, "clerk")
    delivery, doc = await visible_delivery(session, principal, delivery_id, as_recipient=True)
    note = nfc(change.note)
    check_transition(delivery.status, change.status, before_recall=delivery.status_before_recall,
                     note=note, incoming_number=change.incoming_number)
    _apply(delivery, change, note)
    session.add(DeliveryEvent(delivery_id=delivery.id, status=change.status, actor_id=principal.user_id,
                              at=delivery.updated_at, note=note))
    if change.status in _NOTIFY_SENDER:
        await _notify_sender(session, doc, delivery, _NOTIFY_SENDER[change.status], note)
    await audit.append(session, action=f"delivery.status.{change.status}", actor_id=principal.user_id,
                       unit_id=principal.unit_id, document_id=doc.id, object_id=delivery.id,
                       data={"status": change.status, "note": note, "incoming_number": change.incoming_number})
    await session.flush()
    return delivery


def _apply(delivery: Delivery, change: StatusChange, note: str) -> None:
    now = utcnow()
    if delivery.status == "16":
        delivery.status_before_recall = None
    delivery.status, delivery.updated_at, delivery.note = change.status, now, note
    if change.status == "03":
        delivery.incoming_number = nfc(change.incoming_number or "")
        delivery.registered_at = now
    if change.assignee:
        delivery.assignee = nfc(change.assignee)
    if change.status == "16":
        # Handling resumes where it stood before the recall request.
        delivery.status_before_recall = delivery.status_before_recall or "01"


async def _notify_sender(session: AsyncSession, doc: Document, delivery: Delivery, kind: str, note: str) -> None:
    recipient_name = (await session.execute(select(col(Unit.name)).where(
        col(Unit.id) == delivery.recipient_unit_id))).scalar_one()
    sender_name = (await session.execute(select(col(Unit.name)).where(col(Unit.id) == doc.sender_unit_id))).scalar_one()
    payload = notification_payload(doc, sender_name, reason=note, recipient_unit_name=recipient_name)
    session.add(OutboxEvent(kind=kind, unit_id=delivery.from_unit_id, document_id=doc.id,
                            delivery_id=delivery.id, priority=doc.urgency, payload=payload))
