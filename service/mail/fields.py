"""The values a template can use, from the event payload with DB fall-backs."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from .messages import URGENCY_WORDS
from .rows import EventContext

__all__ = ["EventContext", "template_fields"]

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
VERDICT_WORDS = {
    "valid": "Hợp lệ",
    "passed": "Hợp lệ",
    "invalid": "Không hợp lệ",
    "failed": "Không hợp lệ",
    "indeterminate": "Chưa xác định được",
}


def _text(value: Any) -> str:
    # Not normalized here: rendering puts every value it uses in NFC.
    return str(value) if value not in (None, "") else ""


def _day(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(VN_TZ).strftime("%H:%M %d/%m/%Y")
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value[:10]).strftime("%d/%m/%Y")
        except ValueError:
            return value
    return ""


def _urgency(value: Any) -> str:
    if isinstance(value, int):
        return URGENCY_WORDS.get(value, str(value))
    return _text(value) or URGENCY_WORDS[0]


def template_fields(ctx: EventContext, base_url: str) -> dict[str, str]:
    """Every ``$name`` of the templates; absent values are empty strings."""
    p, doc = ctx.event.payload, ctx.document
    doc_id = ctx.event.document_id
    # Built from the deployment's address: the payload's document_url is a path, which no
    # mail reader can open.
    url = f"{base_url.rstrip('/')}/api/v1/documents/{doc_id}" if doc_id else _text(p.get("document_url"))
    return {
        "number_notation": _text(p.get("number_notation") or (doc.number_notation if doc else "")),
        "subject": _text(p.get("subject") or (doc.subject if doc else "")),
        "sender_unit": _text(p.get("sender_unit_name") or ctx.sender_unit_name),
        "recipient_unit": _text(ctx.unit_name),
        "urgency": _urgency(p.get("urgency", doc.urgency if doc else 0)),
        "deadline": _day(p.get("deadline") or (doc.deadline if doc else None)) or "Không",
        "verdict": VERDICT_WORDS.get(str(p.get("verdict") or ctx.verdict), "Chưa kiểm tra"),
        "document_url": _text(url),
        "reason": _text(p.get("reason")),
        "received_at": _day(ctx.delivery_created_at or p.get("received_at")),
        "overdue_unit": _text(p.get("overdue_unit_name") or ctx.delivery_unit_name),
        "returning_unit": _text(p.get("recipient_unit_name")) or "đơn vị nhận",
        "failed_unit": _text(p.get("failed_unit_name")),
        "failed_addresses": _text(p.get("failed_addresses")),
        "failed_reply": _text(p.get("failed_reply")),
    }
