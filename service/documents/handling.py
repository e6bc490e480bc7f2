"""A receiver's handling steps on one delivery (02–06, 15, 16)."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service import audit
from service.auth import Principal
from service.documents.access import require_role, visible_delivery
from service.documents.models import Delivery, DeliveryEvent, Document
from service.documents.schemas import StatusChange
from service.documents.sending import notification_payload
from service.documents.statuses import STATUS_NAMES, ChangedMeanwhileError, check_transition
from service.errors import ConflictError
from service.outbox.models import OutboxEvent
from service.storage import driver
from service.storage.rows import update_if
from service.storage.types import utcnow
from service.text import VN_TZ, nfc
from service.units import Unit

__all__ = ["IncomingNumberTakenError", "change_status", "incoming_key"]

# Which steps tell the sending unit's mailboxes, and as what.
_NOTIFY_SENDER = {"02": "returned"}


async def change_status(session: AsyncSession, principal: Principal, delivery_id: str,
                        change: StatusChange) -> Delivery:
    """Apply a receiver's step.

    Raises DocumentNotFoundError, InvalidTransitionError, InvalidInputError, and
    ChangedMeanwhileError when a concurrent request changed the status first.
    """
    require_role(principal, "clerk")
    delivery, doc = await visible_delivery(session, principal, delivery_id, as_recipient=True)
    note = nfc(change.note)
    check_transition(delivery.status, change.status, before_recall=delivery.status_before_recall,
                     note=note, incoming_number=change.incoming_number)
    values = _step_values(delivery, change, note)
    await _check_book(session, delivery, values)
    await _write_step(session, delivery, values)
    session.add(DeliveryEvent(delivery_id=delivery.id, status=change.status, actor_id=principal.user_id,
                              at=delivery.updated_at, note=note))
    if change.status in _NOTIFY_SENDER:
        await _notify_sender(session, doc, delivery, _NOTIFY_SENDER[change.status], note)
    await audit.append(session, action=f"delivery.status.{change.status}", actor_id=principal.user_id,
                       unit_id=principal.unit_id, document_id=doc.id, object_id=delivery.id,
                       data={"status": change.status, "note": note, "incoming_number": change.incoming_number})
    await session.flush()
    return delivery


class IncomingNumberTakenError(ConflictError):
    """The unit's incoming book already holds this number this year."""

    code = "incoming-number-taken"
    title = "Incoming number already given"


def incoming_key(number: str, registered_at: datetime) -> str | None:
    """The year (Vietnam time) and a digest of the number as the incoming book compares
    it: case, spacing and Unicode form aside, and a plain number's leading zeros (``0125``
    is ``125``). A digest, as case folding can lengthen a number past any column (ß → ss)."""
    text = " ".join(nfc(number).casefold().split())
    if not text:
        return None
    if _ASCII_DIGITS.fullmatch(text):  # not str.isdigit: "²" is a digit int() refuses
        text = str(int(text))
    return f"{registered_at.astimezone(VN_TZ).year}:{hashlib.sha256(text.encode()).hexdigest()}"


_ASCII_DIGITS = re.compile("[0-9]+")


_HOLDER = (select(col(Document.number_notation), col(Delivery.registered_at))
           .join(Document, col(Document.id) == col(Delivery.document_id))
           .where(col(Delivery.recipient_unit_id) == bindparam("unit_id"),
                  col(Delivery.incoming_key) == bindparam("key")).limit(1))


async def _check_book(session: AsyncSession, delivery: Delivery, values: dict[str, Any]) -> None:
    """Raises IncomingNumberTakenError naming the document that holds the number. (Two
    registrations at the same moment: the unique key refuses the second.)"""
    key = values.get("incoming_key")
    if key is None:
        return
    for number_notation, registered_at in await driver.fetch(
            session, _HOLDER, {"unit_id": delivery.recipient_unit_id, "key": key}):
        raise IncomingNumberTakenError(
            f"incoming number {values['incoming_number']} of {key.partition(':')[0]} is already in your "
            f"book for document {number_notation} (registered {registered_at.astimezone(VN_TZ):%d/%m/%Y}); "
            "give the next free number", field="incoming_number")


def _step_values(delivery: Delivery, change: StatusChange, note: str) -> dict[str, Any]:
    """The columns the step changes, and only those: a column left out keeps what a
    concurrent step (a 04 naming another assignee) wrote."""
    now = utcnow()
    values: dict[str, Any] = {"status": change.status, "updated_at": now, "note": note}
    if delivery.status == "16":
        values["status_before_recall"] = None
    if change.status == "03":
        number = nfc(change.incoming_number or "")
        values.update(incoming_number=number, incoming_key=incoming_key(number, now), registered_at=now)
    if change.assignee:
        values["assignee"] = nfc(change.assignee)
    if change.status == "16":
        # Handling resumes where it stood before the recall request.
        values["status_before_recall"] = delivery.status_before_recall or "01"
    return values


async def _write_step(session: AsyncSession, delivery: Delivery, values: dict[str, Any]) -> None:
    """Write the step only if the delivery still has the status it was checked against.

    Raises ChangedMeanwhileError, before anything of the step (event, notification, audit
    entry) is added to the session.
    """
    if not await update_if(session, delivery, col(Delivery.status) == delivery.status,
                           col(Delivery.status_before_recall).is_not_distinct_from(delivery.status_before_recall),
                           **values):
        now = (await session.execute(select(col(Delivery.status)).where(col(Delivery.id) == delivery.id))).scalar_one()
        raise ChangedMeanwhileError(
            f"this delivery's status changed while you were changing it (it is now {now} {STATUS_NAMES[now]}); "
            "reload it and try again", current=now)


async def _notify_sender(session: AsyncSession, doc: Document, delivery: Delivery, kind: str, note: str) -> None:
    recipient_name = (await session.execute(select(col(Unit.name)).where(
        col(Unit.id) == delivery.recipient_unit_id))).scalar_one()
    sender_name = (await session.execute(select(col(Unit.name)).where(col(Unit.id) == doc.sender_unit_id))).scalar_one()
    payload = notification_payload(doc, sender_name, reason=note, recipient_unit_name=recipient_name)
    session.add(OutboxEvent(kind=kind, unit_id=delivery.from_unit_id, document_id=doc.id,
                            delivery_id=delivery.id, priority=doc.urgency, payload=payload))
