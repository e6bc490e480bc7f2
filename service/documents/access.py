"""The one place that decides whether a caller may see a document or delivery.

Anything a caller may not see is reported as not found, whether it exists or
not, so that ids of other units cannot be probed.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.auth import Principal
from service.documents.models import Delivery, Document
from service.errors import NotFoundError, PermissionDeniedError
from service.units import Unit

__all__ = ["DocumentNotFoundError", "document_visibility", "require_role", "visible_delivery", "visible_document"]


class DocumentNotFoundError(NotFoundError):
    code = "document-not-found"


def require_role(principal: Principal, *roles: str) -> None:
    """Raises PermissionDeniedError unless the caller has one of ``roles``."""
    if not principal.has(*roles):
        raise PermissionDeniedError(f"this action needs the role {' or '.join(roles)}")


def _auditor_can_see(principal: Principal, doc_id: str) -> ColumnElement[bool]:
    sender_in_scope = exists().where(
        col(Unit.id) == col(Document.sender_unit_id), col(Unit.path).startswith(principal.audit_root_path)
    )
    recipient_in_scope = exists().where(
        col(Delivery.document_id) == doc_id,
        col(Unit.id) == col(Delivery.recipient_unit_id),
        col(Unit.path).startswith(principal.audit_root_path),
    )
    return sender_in_scope | recipient_in_scope


def document_visibility(principal: Principal, doc_id: str) -> ColumnElement[bool]:
    """True for the document ``doc_id`` if the caller's unit sent or received it (or audits it)."""
    condition = (col(Document.sender_unit_id) == principal.unit_id) | exists().where(
        col(Delivery.document_id) == doc_id, col(Delivery.recipient_unit_id) == principal.unit_id
    )
    if principal.has("auditor"):
        condition = condition | _auditor_can_see(principal, doc_id)
    return condition


async def visible_document(session: AsyncSession, principal: Principal, doc_id: str) -> Document:
    """The document if the caller's unit sent or received it (or audits it).

    Raises DocumentNotFoundError otherwise.
    """
    stmt = select(Document).where(col(Document.id) == doc_id, document_visibility(principal, doc_id))
    doc = (await session.execute(stmt)).scalars().first()
    if doc is None:
        raise DocumentNotFoundError("no such document in your unit")
    return doc


async def visible_delivery(session: AsyncSession, principal: Principal, delivery_id: str,
                           *, as_recipient: bool) -> tuple[Delivery, Document]:
    """A delivery to the caller's unit (``as_recipient``), or of a document it can see.

    Raises DocumentNotFoundError.
    """
    delivery = await session.get(Delivery, delivery_id)
    if delivery is None:
        raise DocumentNotFoundError("no such delivery in your unit")
    if as_recipient:
        if delivery.recipient_unit_id != principal.unit_id:
            raise DocumentNotFoundError("no such delivery in your unit")
        doc = await session.get(Document, delivery.document_id)
        if doc is None:
            raise DocumentNotFoundError("no such delivery in your unit")
        return delivery, doc
    try:
        doc = await visible_document(session, principal, delivery.document_id)
    except DocumentNotFoundError as exc:
        raise DocumentNotFoundError("no such delivery in your unit") from exc
    involved = {delivery.recipient_unit_id, delivery.from_unit_id, doc.sender_unit_id}
    if principal.unit_id not in involved and not principal.has("auditor"):
        raise DocumentNotFoundError("no such delivery in your unit")
    return delivery, doc
