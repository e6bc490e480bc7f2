"""Sending, forwarding and recalling: deliveries created and changed in bulk."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, case, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col

from service import audit
from service.auth import Principal
from service.documents.access import require_role, visible_delivery, visible_document
from service.documents.models import Delivery, DeliveryEvent, Document
from service.documents.statuses import RECALLABLE, REGISTERED, InvalidTransitionError, handling_status
from service.errors import ConflictError, InvalidInputError
from service.outbox.models import OutboxEvent
from service.routing import FORWARD_POLICY, RecipientSelector, RoutingPolicy, UnitRef, resolve_recipients
from service.storage import driver
from service.storage.bulk import COPY_FROM, bulk_insert
from service.storage.rows import insert_into
from service.storage.types import new_id, new_ids, utcnow
from service.text import blank, to_vn_iso
from service.units import Unit

__all__ = ["SendResult", "Sendable", "forward_delivery", "notification_payload", "recall_document", "send_document",
           "take_turn"]


class Sendable(Protocol):
    """What sending reads of a document: a loaded ``Document``, or just these columns."""

    @property
    def id(self) -> str: ...
    @property
    def sender_unit_id(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def sent_at(self) -> datetime | None: ...
    @property
    def urgency(self) -> int: ...
    @property
    def number_notation(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def doc_type(self) -> str: ...
    @property
    def deadline(self) -> date | None: ...


@dataclass(frozen=True)
class SendResult:
    """What a send or forward did: deliveries created, recipients already reached."""

    document_id: str
    created: int
    already_sent: int
    delivery_ids: list[str] = field(default_factory=list)


def notification_payload(doc: Sendable, sender_name: str, **extra: Any) -> dict[str, Any]:
    """What a notification about ``doc`` shows; stored with every outbox event."""
    return {
        "number_notation": doc.number_notation, "subject": doc.subject, "doc_type": doc.doc_type,
        "sender_unit_name": sender_name, "urgency": doc.urgency,
        "deadline": doc.deadline.isoformat() if doc.deadline else None,
        "document_url": f"/api/v1/documents/{doc.id}", **extra,
    }


async def send_document(session: AsyncSession, principal: Principal, doc: Sendable,
                        selectors: list[RecipientSelector], policy: RoutingPolicy,
                        notice: dict[str, Any] | None = None) -> SendResult:
    """One delivery per recipient unit, checked against the routing policy.

    ``doc`` is what this caller may see, read in this session (``visible_select``);
    ``notice`` adds to what arrival notifications show (e.g. the signature verdict).

    Raises PermissionDeniedError, InvalidInputError, UnknownUnitsError, RoutingRefusedError.
    """
    require_role(principal, "clerk")
    if doc.sender_unit_id != principal.unit_id:
        raise InvalidInputError("only the sending unit sends a document; use forward for a received one")
    await _not_recalled(session, doc.id)
    sender, recipients = await resolve_recipients(session, principal.unit_id, selectors, policy)
    result = await _deliver(session, principal, doc, recipients, sender_name=sender.name, parent=None,
                            base_hops=[sender.id], notice=notice, mark_sent=doc.sent_at is None)
    await audit.append(session, action="document.sent", actor_id=principal.user_id, unit_id=principal.unit_id,
                       document_id=doc.id, data=_recipient_digest(recipients, result))
    return result


_RECALLED_AT = select(col(Document.recalled_at)).where(col(Document.id) == bindparam("doc_id"))


async def _not_recalled(session: AsyncSession, doc_id: str) -> None:
    """Raises ConflictError for a document its unit recalled: withdrawn, it goes to nobody new
    (read as it is now: a recall that committed while this send waited for its turn counts)."""
    recalled_at = (await driver.fetch(session, _RECALLED_AT, {"doc_id": doc_id}))[0][0]
    if recalled_at is not None:
        raise ConflictError(f"this document was recalled on {to_vn_iso(recalled_at)} and goes to nobody new; "
                            "a document that replaces it is registered and sent as a document of its own")


# The first send's time stays: two first sends at once (to different units) both mark it.
_MARK_SENT = (update(Document).where(col(Document.id) == bindparam("doc_id"), col(Document.sent_at).is_(None))
              .values(sent_at=bindparam("at")))


async def _mark_sent(session: AsyncSession, doc: Sendable, at: datetime) -> None:
    await driver.execute(session, _MARK_SENT, {"doc_id": doc.id, "at": at})
    _marked(doc, at)


def _marked(doc: Sendable, at: datetime) -> None:
    if isinstance(doc, Document):  # a loaded object is told it is already so: nothing left to flush
        set_committed_value(doc, "sent_at", at)


# Sends, forwards and recalls of one document take turns on its row (PostgreSQL; SQLite writes
# one transaction at a time): a recall then sees every delivery a send or forward made before
# it, and a forward made after it sees its copy recalled. Forwards of one document share the
# row (each inserts only deliveries); a send or a recall (which also change the row) hold it.
_TURN = select(col(Document.id)).where(col(Document.id) == bindparam("doc_id"))
_SHARED_TURN = _TURN.with_for_update(read=True)
_OWN_TURN = _TURN.with_for_update(key_share=True)  # FOR NO KEY UPDATE: the lock an UPDATE of it takes
_PARENT_NOW = select(col(Delivery.status), col(Delivery.status_before_recall)).where(
    col(Delivery.id) == bindparam("delivery_id"))


async def take_turn(session: AsyncSession, doc_id: str, *, shared: bool = False) -> None:
    """Wait for the sends, forwards and recalls of ``doc_id`` in progress (see ``_TURN``)."""
    if driver.dialect_of(session) != "sqlite":
        await driver.fetch(session, _SHARED_TURN if shared else _OWN_TURN, {"doc_id": doc_id})


async def _forwardable(session: AsyncSession, parent: Delivery) -> None:
    """Raises InvalidTransitionError unless the copy is in the unit's books, as it is now
    (a recall that committed while this request waited for its turn counts)."""
    await take_turn(session, parent.document_id, shared=True)
    status, before_recall = (await driver.fetch(session, _PARENT_NOW, {"delivery_id": parent.id}))[0]
    if status == "13":
        raise InvalidTransitionError("the sender asked for this document back (13): accept (15) or refuse (16) "
                                     "the recall before forwarding it")
    if handling_status(status, before_recall) not in REGISTERED:
        raise InvalidTransitionError("register the document (03) before forwarding it")


async def forward_delivery(session: AsyncSession, principal: Principal, delivery_id: str,
                           selectors: list[RecipientSelector], policy: RoutingPolicy | None = None) -> SendResult:
    """A registered recipient passes the document to units below it; hops are kept.

    ``policy`` is the deployment's routing policy: a unit it lets the caller send to is one
    the caller knows of, so a forward there is refused naming the unit and the rule. Without
    it only units of the caller's own subtree are named; any other is answered as unknown.

    Raises DocumentNotFoundError, InvalidTransitionError, UnknownUnitsError, RoutingRefusedError.
    """
    require_role(principal, "clerk")
    parent, doc = await visible_delivery(session, principal, delivery_id, as_recipient=True)
    await _forwardable(session, parent)
    me, recipients = await resolve_recipients(session, principal.unit_id, selectors, FORWARD_POLICY,
                                              known_by=policy)
    result = await _deliver(session, principal, doc, recipients, sender_name=me.name, parent=parent,
                            base_hops=list(parent.hops))
    await audit.append(session, action="delivery.forwarded", actor_id=principal.user_id,
                       unit_id=principal.unit_id, document_id=doc.id, object_id=parent.id,
                       data=_recipient_digest(recipients, result))
    return result


async def _deliver(session: AsyncSession, principal: Principal, doc: Sendable, recipients: list[UnitRef],
                   *, sender_name: str, parent: Delivery | None, base_hops: list[str],
                   notice: dict[str, Any] | None = None, mark_sent: bool = False) -> SendResult:
    """The deliveries and arrival notices of ``recipients`` not reached yet; ``mark_sent``
    (a first send) also marks the document sent."""
    existing: set[str] = set()
    if doc.sent_at is not None:  # deliveries exist only once the document was sent
        existing.update((await session.execute(
            select(col(Delivery.recipient_unit_id)).where(col(Delivery.document_id) == doc.id))).scalars())
    fresh = [r for r in recipients if r.id not in existing and r.id != doc.sender_unit_id]
    now = utcnow()
    payload = notification_payload(doc, sender_name, **(notice or {}))
    deliveries: list[dict[str, Any]] = []
    outbox: list[dict[str, Any]] = []
    # The arrival (01) is the delivery row itself (created_at, from_unit_id; the actor is in
    # the send's audit entry): later steps each add a delivery_event row.
    ids = iter(new_ids(2 * len(fresh)))
    for r in fresh:
        did = next(ids)
        deliveries.append({"id": did, "document_id": doc.id, "recipient_unit_id": r.id,
                           "from_unit_id": principal.unit_id, "parent_delivery_id": parent.id if parent else None,
                           "hops": [*base_hops, r.id], "status": "01", "status_before_recall": None,
                           "urgency": doc.urgency, "incoming_number": None, "incoming_key": None, "assignee": None,
                           "note": "", "created_at": now, "updated_at": now, "registered_at": None})
        outbox.append(_outbox_row("arrival", r.id, doc, did, payload, now, next(ids)))
    await _flush_pending(session)
    if len(fresh) < COPY_FROM:
        # Held for the transaction's last statement: on PostgreSQL the deliveries, their
        # arrival notices, the sent mark and the audit entries go in one trip.
        await driver.defer(session, insert_into(Delivery.__table__), deliveries)  # type: ignore[attr-defined]
        await driver.defer(session, insert_into(OutboxEvent.__table__), outbox)  # type: ignore[attr-defined]
        if mark_sent:
            await driver.defer(session, _MARK_SENT, [{"doc_id": doc.id, "at": now}])
            _marked(doc, now)
    else:
        await bulk_insert(session, Delivery.__table__, deliveries)  # type: ignore[attr-defined]
        await bulk_insert(session, OutboxEvent.__table__, outbox)  # type: ignore[attr-defined]
        if mark_sent:
            await _mark_sent(session, doc, now)
    return SendResult(doc.id, len(fresh), len(recipients) - len(fresh), [d["id"] for d in deliveries])


def _outbox_row(kind: str, unit_id: str, doc: Sendable, delivery_id: str | None,
                payload: dict[str, Any], now: Any, row_id: str | None = None) -> dict[str, Any]:
    return {"id": row_id or new_id(), "kind": kind, "unit_id": unit_id, "document_id": doc.id,
            "delivery_id": delivery_id,
            "priority": doc.urgency, "payload": payload, "state": "pending", "attempts": 0,
            "next_attempt_at": now, "lease_owner": None, "lease_until": None, "last_error": "",
            "created_at": now, "updated_at": now}


async def _bulk(session: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> None:
    # Straight to the driver (COPY / executemany): a send to 10,000 units writes 30,000 rows.
    await _flush_pending(session)
    await bulk_insert(session, model.__table__, rows)


async def _flush_pending(session: AsyncSession) -> None:
    if session.new or session.dirty or session.deleted:  # rows may refer to objects not yet written
        await session.flush()


def _recipient_digest(recipients: list[UnitRef], result: SendResult) -> dict[str, Any]:
    ids = sorted(r.id for r in recipients)
    return {"recipients": len(ids), "created": result.created, "already_sent": result.already_sent,
            "recipient_ids_sha256": hashlib.sha256(",".join(ids).encode()).hexdigest(),
            "sample": [r.code for r in recipients[:20]]}


async def recall_document(session: AsyncSession, principal: Principal, doc_id: str, reason: str) -> int:
    """Ask every recipient to give the document back (13). Returns how many were asked:
    0 when a recall (an earlier or a concurrent one) already asked every one.

    Raises DocumentNotFoundError, InvalidInputError (no reason, not the sender).
    """
    require_role(principal, "clerk")
    doc = await visible_document(session, principal, doc_id)
    if doc.sender_unit_id != principal.unit_id:
        raise InvalidInputError("only the sending unit can recall a document")
    if blank(reason):
        raise InvalidInputError("a recall needs a reason", field="reason")
    await take_turn(session, doc.id)
    now = utcnow()
    rows = await _ask_back(session, doc.id, reason, now)
    if not rows:  # every recipient was already asked: the first recall's time and record stand
        return 0
    sender_name = (await session.execute(select(col(Unit.name)).where(col(Unit.id) == principal.unit_id))).scalar_one()
    payload = notification_payload(doc, sender_name, reason=reason)
    await _bulk(session, DeliveryEvent, [{"id": new_id(), "delivery_id": r.id, "status": "13",
                                          "actor_id": principal.user_id, "at": now, "note": reason} for r in rows])
    await _bulk(session, OutboxEvent, [_outbox_row("recall", r.recipient_unit_id, doc, r.id, payload, now)
                                       for r in rows])
    doc.recalled_at = now
    await audit.append(session, action="document.recall_requested", actor_id=principal.user_id,
                       unit_id=principal.unit_id, document_id=doc.id, data={"reason": reason, "deliveries": len(rows)})
    return len(rows)


async def _ask_back(session: AsyncSession, doc_id: str, reason: str, now: datetime) -> list[Any]:
    """Mark 13 the deliveries still recallable, in one conditional statement; the rows it
    changed (id, recipient). A concurrent recall waits for these rows (PostgreSQL) or for
    the transaction (SQLite), then finds none of them recallable: nobody is asked twice."""
    changed = await session.execute(
        update(Delivery).where(col(Delivery.document_id) == doc_id, col(Delivery.status).in_(RECALLABLE))
        # Both sides of SET read the row as it was: status_before_recall gets the old status,
        # or, for a delivery that refused an earlier recall (16), where it stood before that one.
        .values(status="13", updated_at=now, note=reason, status_before_recall=case(
            (col(Delivery.status) == "16", col(Delivery.status_before_recall)), else_=col(Delivery.status)))
        .returning(col(Delivery.id), col(Delivery.recipient_unit_id))
        .execution_options(synchronize_session=False))
    return list(changed.all())
