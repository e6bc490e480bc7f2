"""Reading a document's files and history, within what the caller may see."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service import audit
from service.auth import Principal
from service.documents.access import DocumentNotFoundError, sees_every_recipient, units_under, visible_document
from service.documents.models import Attachment, Delivery, DeliveryEvent, Document
from service.documents.statuses import STATUS_NAMES
from service.errors import ServiceError
from service.text import to_vn_iso

__all__ = ["RecalledError", "delivery_steps", "attachment_of", "attachments_of", "document_history", "readable_content"]


class RecalledError(ServiceError):
    """The caller's unit gave the document back after a recall (15)."""

    status = 410
    code = "recalled"
    title = "Document recalled"


async def attachments_of(session: AsyncSession, doc_id: str) -> list[Attachment]:
    stmt = select(Attachment).where(col(Attachment.document_id) == doc_id).order_by(col(Attachment.filename))
    return list((await session.execute(stmt)).scalars())


async def attachment_of(session: AsyncSession, doc_id: str, att_id: str) -> Attachment:
    """Raises DocumentNotFoundError."""
    att = await session.get(Attachment, att_id)
    if att is None or att.document_id != doc_id:
        raise DocumentNotFoundError("no such attachment")
    return att


async def readable_content(session: AsyncSession, principal: Principal, doc_id: str) -> Document:
    """The document whose bytes the caller may download.

    Raises DocumentNotFoundError, RecalledError (the unit accepted a recall).
    """
    doc = await visible_document(session, principal, doc_id)
    if await sees_every_recipient(session, principal, doc):
        return doc
    statuses = set((await session.execute(select(col(Delivery.status)).where(
        col(Delivery.document_id) == doc.id, col(Delivery.recipient_unit_id) == principal.unit_id))).scalars())
    if statuses == {"15"}:
        raise RecalledError("your unit accepted the sender's recall of this document; its file is withdrawn")
    return doc


async def document_history(session: AsyncSession, principal: Principal, doc_id: str) -> list[dict[str, Any]]:
    """Audited actions on the document: all for its sender (and the sender's auditors);
    otherwise those of the caller's own unit, and for an auditor those of the units it
    audits. Raises DocumentNotFoundError."""
    doc = await visible_document(session, principal, doc_id)
    entries = await audit.history(session, doc.id)
    if not await sees_every_recipient(session, principal, doc):
        mine = {principal.unit_id}
        if principal.has("auditor"):
            mine |= await units_under(session, {e.unit_id for e in entries}, principal.audit_root_path)
        entries = [e for e in entries if e.unit_id in mine]
    return [{"seq": e.seq, "at": to_vn_iso(e.at), "action": e.action, "actor_id": e.actor_id,
             "unit_id": e.unit_id, "object_id": e.object_id, "data": e.data, "hash": e.hash} for e in entries]


async def delivery_steps(session: AsyncSession, delivery: Delivery) -> list[dict[str, Any]]:
    """Every status the delivery went through, with who, when and why; the arrival (01)
    is the delivery's own creation by the sending (or forwarding) unit."""
    stmt = select(DeliveryEvent).where(col(DeliveryEvent.delivery_id) == delivery.id).order_by(
        col(DeliveryEvent.at))
    steps = [{"status": "01", "status_name": STATUS_NAMES["01"], "at": to_vn_iso(delivery.created_at),
              "by_unit_id": delivery.from_unit_id, "actor_id": None, "note": ""}]
    for e in (await session.execute(stmt)).scalars():
        steps.append({"status": e.status, "status_name": STATUS_NAMES.get(e.status, e.status), "at": to_vn_iso(e.at),
                      "by_unit_id": None, "actor_id": e.actor_id, "note": e.note})
    return steps
