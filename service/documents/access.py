"""The one place that decides whether a caller may see a document or delivery.

Anything a caller may not see is reported as not found, whether it exists or
not, so that ids of other units cannot be probed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.auth import Principal
from service.documents.models import Delivery, Document
from service.errors import NotFoundError, PermissionDeniedError
from service.units import Unit, covers_every_unit

__all__ = ["DocumentNotFoundError", "audited_units", "require_role", "require_whole_tree", "sees_every_recipient",
           "units_under", "visible_delivery", "visible_document", "visible_select"]


class DocumentNotFoundError(NotFoundError):
    code = "document-not-found"


def require_role(principal: Principal, *roles: str) -> None:
    """Raises PermissionDeniedError unless the caller has one of ``roles``."""
    if not principal.has(*roles):
        raise PermissionDeniedError(f"this action needs the role {' or '.join(roles)}")


# Sent or received by the unit :unit_id; for an auditor, also sent by or delivered to a
# unit under :root_path. Statements are built once with parameters (:doc_id, :unit_id,
# :root_path): building and keying a statement costs as much as running it.
_SEEN_BY_UNIT = (col(Document.sender_unit_id) == bindparam("unit_id")) | exists().where(
    col(Delivery.document_id) == bindparam("doc_id"), col(Delivery.recipient_unit_id) == bindparam("unit_id"))
_SEEN_BY_AUDITOR = _SEEN_BY_UNIT | exists().where(
    col(Unit.id) == col(Document.sender_unit_id), col(Unit.path).startswith(bindparam("root_path"))
) | exists().where(
    col(Delivery.document_id) == bindparam("doc_id"), col(Unit.id) == col(Delivery.recipient_unit_id),
    col(Unit.path).startswith(bindparam("root_path")))
_BUILT: dict[tuple[Any, ...], Select[Any]] = {}


def visible_select(principal: Principal, doc_id: str, *columns: Any) -> tuple[Select[Any], dict[str, str]]:
    """SELECT ``columns`` of the document ``doc_id`` if the caller's unit sent or received
    it (or audits it), and the parameters to run it with. The statement for the same
    ``columns`` is the same object each time (``storage.driver`` can run it)."""
    params = {"doc_id": doc_id, "unit_id": principal.unit_id}
    auditor = principal.has("auditor")
    if auditor:
        params["root_path"] = principal.audit_root_path
    stmt = _BUILT.get((auditor, *columns))
    if stmt is None:
        condition = _SEEN_BY_AUDITOR if auditor else _SEEN_BY_UNIT
        stmt = _BUILT[(auditor, *columns)] = select(*columns).where(col(Document.id) == bindparam("doc_id"),
                                                                    condition)
    return stmt, params


async def visible_document(session: AsyncSession, principal: Principal, doc_id: str) -> Document:
    """The document if the caller's unit sent or received it (or audits it).

    Raises DocumentNotFoundError otherwise.
    """
    stmt, params = visible_select(principal, doc_id, Document)
    doc: Document | None = (await session.execute(stmt, params)).scalars().first()
    if doc is None:
        raise DocumentNotFoundError("no such document in your unit")
    return doc


async def visible_delivery(session: AsyncSession, principal: Principal, delivery_id: str,
                           *, as_recipient: bool) -> tuple[Delivery, Document]:
    """A delivery to the caller's unit (``as_recipient``), or of a document it can see.

    Raises DocumentNotFoundError; PermissionDeniedError when the caller sees the delivery
    but asks as its recipient and is not (the sender, an auditor).
    """
    delivery = await session.get(Delivery, delivery_id)
    if as_recipient and delivery is not None and delivery.recipient_unit_id == principal.unit_id:
        doc = await session.get(Document, delivery.document_id)
        if doc is None:
            raise DocumentNotFoundError("no such delivery in your unit")
        return delivery, doc
    # A missing id takes the same look-ups as another unit's delivery: the time an answer
    # takes must not tell one from the other.
    try:
        doc = await visible_document(session, principal, delivery.document_id if delivery else delivery_id)
    except DocumentNotFoundError as exc:
        raise DocumentNotFoundError("no such delivery in your unit") from exc
    if delivery is None or not await _takes_part(session, principal, delivery, doc):
        raise DocumentNotFoundError("no such delivery in your unit")
    if as_recipient:
        raise PermissionDeniedError(
            "only the receiving unit registers, returns, handles or forwards its copy; the sending unit "
            f"takes a document back with POST /api/v1/documents/{delivery.document_id}/recall")
    return delivery, doc


async def _takes_part(session: AsyncSession, principal: Principal, delivery: Delivery, doc: Document) -> bool:
    involved = {delivery.recipient_unit_id, delivery.from_unit_id, doc.sender_unit_id}
    if principal.unit_id in involved:
        return True
    # An auditor sees the deliveries its subtree took part in: seeing the document (one of
    # its units received it) does not open how another unit outside handled its copy.
    return principal.has("auditor") and bool(await units_under(session, involved, principal.audit_root_path))


def audited_units(principal: Principal) -> Select[Any]:
    """The ids of the units an auditor reads: its granted subtree (a subquery)."""
    return select(col(Unit.id)).where(col(Unit.path).startswith(principal.audit_root_path))


async def units_under(session: AsyncSession, unit_ids: Iterable[str | None], root_path: str) -> set[str]:
    """Those of ``unit_ids`` that are ``root_path``'s unit or below it."""
    wanted = [u for u in unit_ids if u]
    if not wanted:
        return set()
    found = await session.execute(select(col(Unit.id)).where(
        col(Unit.id).in_(wanted), col(Unit.path).startswith(root_path)))
    return {row[0] for row in found}


async def sees_every_recipient(session: AsyncSession, principal: Principal, doc: Document) -> bool:
    """Whether the caller sees the whole exchange of ``doc``, as its sender does: its own
    unit sent it, or it audits the unit that did."""
    if doc.sender_unit_id == principal.unit_id:
        return True
    return principal.has("auditor") and doc.sender_unit_id in await units_under(
        session, {doc.sender_unit_id}, principal.audit_root_path)


async def require_whole_tree(session: AsyncSession, principal: Principal) -> None:
    """Admit an auditor or administrator whose part of the tree holds every unit: what the
    whole deployment shares (the audit chain, its size and where it breaks) is theirs only.

    Raises PermissionDeniedError.
    """
    scopes = {principal.audit_root_path if principal.has("auditor") else "",
              principal.unit_path if principal.has("admin") else ""} - {""}
    if not any([await covers_every_unit(session, scope) for scope in scopes]):
        raise PermissionDeniedError("the audit chain holds the entries of every unit; it is verified by an "
                                    "auditor or administrator of the whole tree (the provincial committee)")
