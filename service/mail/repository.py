"""Queries of the mail package (flush only; the caller owns the transaction)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from service.documents.models import Delivery, Document, VerificationRecord
from service.outbox.models import OutboxEvent
from service.units.models import Unit

from .models import MailAttempt, MailRecipient

__all__ = [
    "claim_due",
    "deliveries_by_id",
    "documents_by_id",
    "events_by_id",
    "insert_rows",
    "recipients_by_event",
    "release_events",
    "units_by_id",
    "verdicts_by_document",
]

_EV = OutboxEvent.__table__  # type: ignore[attr-defined]
_OPEN = ("pending", "deferred")


def _due(now: datetime) -> object:
    # 'sending' with an expired lease: its worker died; take it again.
    return and_(
        _EV.c.next_attempt_at <= now,
        or_(
            and_(_EV.c.state.in_(_OPEN), or_(_EV.c.lease_until.is_(None), _EV.c.lease_until < now)),
            and_(_EV.c.state == "sending", _EV.c.lease_until < now),
        ),
    )


async def claim_due(
    session: AsyncSession, *, owner: str, now: datetime, lease_s: float, limit: int
) -> list[OutboxEvent]:
    """Lease up to ``limit`` due events, urgent first. PostgreSQL: SKIP LOCKED; SQLite: BEGIN IMMEDIATE."""
    query = (
        select(_EV.c.id)
        .where(_due(now))
        .order_by(_EV.c.priority.desc(), _EV.c.next_attempt_at)
        .limit(limit)
    )
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list((await session.execute(query)).scalars())
    if not ids:
        return []
    await session.execute(
        update(_EV)
        .where(_EV.c.id.in_(ids))
        .values(state="sending", lease_owner=owner, lease_until=now + timedelta(seconds=lease_s), updated_at=now)
    )
    events = await events_by_id(session, ids)
    return sorted(events.values(), key=lambda e: (-e.priority, e.next_attempt_at))


async def release_events(session: AsyncSession, owner: str, outcomes: list[dict[str, object]]) -> None:
    """Write each event's outcome and drop its lease, where this worker still holds it (one executemany).

    Each dict has: eid, state, attempts, next_attempt_at, last_error, updated_at.
    """
    if not outcomes:
        return
    statement = (
        update(_EV)
        .where(_EV.c.id == bindparam("eid"), _EV.c.lease_owner == owner, _EV.c.state == "sending")
        .values(state=bindparam("state"), attempts=bindparam("attempts"), next_attempt_at=bindparam("next_at"),
                last_error=bindparam("last_error"), updated_at=bindparam("updated"), lease_owner=None,
                lease_until=None)
    )
    await (await session.connection()).execute(statement, outcomes)


async def insert_rows(session: AsyncSession, model: type[SQLModel], rows: list[dict[str, object]]) -> None:
    """Bulk insert plain rows (no per-object validation: this is the hot path)."""
    if rows:
        await session.execute(insert(model.__table__), rows)  # type: ignore[attr-defined]


async def events_by_id(session: AsyncSession, ids: Iterable[str]) -> dict[str, OutboxEvent]:
    rows = await session.execute(
        select(OutboxEvent).where(OutboxEvent.id.in_(list(ids))).execution_options(populate_existing=True)  # type: ignore[attr-defined]
    )
    return {e.id: e for e in rows.scalars()}


async def units_by_id(session: AsyncSession, ids: Iterable[str | None]) -> dict[str, Unit]:
    wanted = {i for i in ids if i}
    rows = await session.execute(select(Unit).where(Unit.id.in_(wanted)))  # type: ignore[attr-defined]
    return {u.id: u for u in rows.scalars()}


async def documents_by_id(session: AsyncSession, ids: Iterable[str | None]) -> dict[str, Document]:
    wanted = {i for i in ids if i}
    rows = await session.execute(select(Document).where(Document.id.in_(wanted)))  # type: ignore[attr-defined]
    return {d.id: d for d in rows.scalars()}


async def deliveries_by_id(session: AsyncSession, ids: Iterable[str | None]) -> dict[str, Delivery]:
    wanted = {i for i in ids if i}
    rows = await session.execute(select(Delivery).where(Delivery.id.in_(wanted)))  # type: ignore[attr-defined]
    return {d.id: d for d in rows.scalars()}


async def verdicts_by_document(session: AsyncSession, ids: Iterable[str | None]) -> dict[str, str]:
    """The latest verification verdict of each document."""
    wanted = {i for i in ids if i}
    rows = await session.execute(
        select(VerificationRecord.document_id, VerificationRecord.verdict)
        .where(VerificationRecord.document_id.in_(wanted))  # type: ignore[union-attr]
        .order_by(VerificationRecord.created_at)
    )
    return {doc_id: verdict for doc_id, verdict in rows.all() if doc_id}


async def recipients_by_event(session: AsyncSession, event_ids: Sequence[str]) -> dict[str, list[MailRecipient]]:
    rows = await session.execute(
        select(MailRecipient).where(MailRecipient.event_id.in_(event_ids)).order_by(MailRecipient.address)  # type: ignore[attr-defined]
    )
    grouped: dict[str, list[MailRecipient]] = defaultdict(list)
    for recipient in rows.scalars():
        grouped[recipient.event_id].append(recipient)
    return grouped


async def attempts_of(session: AsyncSession, event_id: str) -> list[MailAttempt]:
    rows = await session.execute(
        select(MailAttempt).where(MailAttempt.event_id == event_id).order_by(MailAttempt.at)  # type: ignore[arg-type]
    )
    return list(rows.scalars())
