"""Notifications: what the mail relay did for the caller's unit, and retry/cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query

from service import mail
from service.api.deps import CurrentPrincipal, Tx, require_roles
from service.auth import Principal

router = APIRouter(prefix="/notifications", tags=["notifications"])
Operator = Depends(require_roles("clerk", "admin"))
_VN = ZoneInfo("Asia/Ho_Chi_Minh")
State = Literal["pending", "sending", "deferred", "sent", "failed", "cancelled"]


def scope_of(principal: Principal) -> mail.Scope:
    """What the caller may read: own unit; admins their subtree; auditors their granted subtree."""
    if principal.has("auditor"):
        return mail.Scope(principal.unit_id, principal.audit_root_path or principal.unit_path)
    return acting_scope(principal)


def acting_scope(principal: Principal) -> mail.Scope:
    """What the caller may act on (retry, cancel): own unit; admins their subtree. Reading a
    subtree as an auditor gives no hand in its mail."""
    if principal.has("admin"):
        return mail.Scope(principal.unit_id, principal.unit_path)
    return mail.Scope(principal.unit_id)


def _vn(moment: datetime | None) -> str | None:
    return moment.astimezone(_VN).isoformat() if moment else None


def _brief(e: Any) -> dict[str, Any]:
    return {"id": e.id, "kind": e.kind, "unit_id": e.unit_id, "document_id": e.document_id,
            "priority": e.priority, "state": e.state, "attempts": e.attempts, "last_error": e.last_error,
            "next_attempt_at": _vn(e.next_attempt_at), "created_at": _vn(e.created_at)}


@router.get("", summary="Notifications of the caller's unit (default: not yet sent, and failed)")
async def list_notifications(tx: Tx, principal: CurrentPrincipal, state: State | None = None,
                             limit: int = Query(default=100, ge=1, le=1000)) -> dict[str, Any]:
    rows = await mail.list_notifications(tx.session, scope_of(principal), state=state, limit=limit)
    return {"count": len(rows), "notifications": [_brief(e) for e in rows]}


@router.get("/{notification_id}", summary="One notification with every server answer")
async def get_notification(notification_id: str, tx: Tx, principal: CurrentPrincipal) -> dict[str, Any]:
    d = await mail.get_notification(tx.session, scope_of(principal), notification_id)
    return {
        **_brief(d.event),
        "recipients": [{"address": r.address, "state": r.state, "attempts": r.attempts, "last_code": r.last_code,
                        "last_reply": r.last_reply, "message_id": r.message_id, "sent_at": _vn(r.sent_at),
                        "without_attachment": r.without_attachment} for r in d.recipients],
        "attempts": [{"at": _vn(a.at), "address": a.address, "stage": a.stage, "code": a.code, "reply": a.reply}
                     for a in d.attempts],
    }


@router.post("/{notification_id}/retry", summary="Send the unsent recipients again now", dependencies=[Operator])
async def retry_notification(notification_id: str, tx: Tx, principal: CurrentPrincipal) -> dict[str, Any]:
    event = await mail.retry_notification(tx.session, acting_scope(principal), notification_id,
                                          actor_id=principal.user_id)
    await tx.commit()
    return _brief(event)


@router.post("/{notification_id}/cancel", summary="Stop trying to send", dependencies=[Operator])
async def cancel_notification(notification_id: str, tx: Tx, principal: CurrentPrincipal) -> dict[str, Any]:
    event = await mail.cancel_notification(tx.session, acting_scope(principal), notification_id,
                                           actor_id=principal.user_id)
    await tx.commit()
    return _brief(event)
