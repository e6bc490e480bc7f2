"""How documents and deliveries are shown: plain dicts, times in Vietnam time."""

from __future__ import annotations

from typing import Any

from service.documents.models import Attachment, Delivery, Document
from service.documents.schemas import URGENCY_NAMES
from service.documents.statuses import STATUS_NAMES
from service.text import to_vn_iso
from service.units import Unit

__all__ = ["delivery_view", "document_view", "unit_brief"]


def unit_brief(unit: Unit) -> dict[str, Any]:
    return {"id": unit.id, "code": unit.code, "name": unit.name, "level": unit.level}


def document_view(doc: Document, attachments: list[Attachment] | None = None,
                  counts: dict[str, int] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": doc.id, "number_notation": doc.number_notation, "number": doc.number,
        "notation": doc.notation, "issuer": doc.issuer, "doc_type": doc.doc_type,
        "issued_on": doc.issued_on.isoformat(), "place": doc.place, "subject": doc.subject,
        "signer_name": doc.signer_name, "signer_position": doc.signer_position,
        "urgency": doc.urgency, "urgency_name": URGENCY_NAMES[doc.urgency],
        "deadline": doc.deadline.isoformat() if doc.deadline else None,
        "recipients_text": doc.recipients_text, "sender_unit_id": doc.sender_unit_id,
        "filename": doc.filename, "sha256": doc.sha256, "size": doc.size,
        "created_at": to_vn_iso(doc.created_at), "sent_at": to_vn_iso(doc.sent_at),
        "recalled_at": to_vn_iso(doc.recalled_at),
        "content_url": f"/api/v1/documents/{doc.id}/content",
    }
    if attachments is not None:
        view["attachments"] = [{"id": a.id, "filename": a.filename, "content_type": a.content_type,
                                "sha256": a.sha256, "size": a.size,
                                "content_url": f"/api/v1/documents/{doc.id}/attachments/{a.id}"}
                               for a in attachments]
    if counts is not None:
        view["status_counts"] = counts
    return view


def delivery_view(d: Delivery, recipient: Unit | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": d.id, "document_id": d.document_id, "recipient_unit_id": d.recipient_unit_id,
        "from_unit_id": d.from_unit_id, "parent_delivery_id": d.parent_delivery_id, "hops": d.hops,
        "status": d.status, "status_name": STATUS_NAMES[d.status], "urgency": d.urgency,
        "incoming_number": d.incoming_number, "assignee": d.assignee, "note": d.note,
        "created_at": to_vn_iso(d.created_at), "updated_at": to_vn_iso(d.updated_at),
        "registered_at": to_vn_iso(d.registered_at),
    }
    if recipient is not None:
        view["recipient"] = unit_brief(recipient)
    return view
