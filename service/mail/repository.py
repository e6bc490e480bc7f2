"""Queries of the mail package (flush only; the caller owns the transaction)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import RowMapping, and_, bindparam, case, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import SQLModel

from service.documents.models import Delivery, Document, VerificationRecord
from service.outbox.models import OutboxEvent
from service.units.models import Unit

from .models import MailAttempt, MailRecipient

__all__ = [
    "claim_due",
    "deliveries_by_id",
    "documents_by_id",
    "documents_with_verdicts",
    "events_by_id",
    "insert_rows",
    "recipient_rows",
    "recipients_by_event",
    "release_events",
    "renew_leases",
    "units_by_id",
    "unlease_events",
    "update_recipients",
    "upsert_recipients",
    "verdicts_by_document",
]

_EV = OutboxEvent.__table__  # type: ignore[attr-defined]
_RC = MailRecipient.__table__  # type: ignore[attr-defined]
_OPEN = ("pending", "deferred")


def _due(now: datetime) -> ColumnElement[bool]:
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
    """Lease up to ``limit`` due events, urgent first, in one statement (UPDATE … RETURNING).

    PostgreSQL: the chosen rows are locked with SKIP LOCKED (a concurrent claimer takes
    others); SQLite: the transaction holds the write lock from its start (BEGIN IMMEDIATE).
    """
    chosen = (
        select(_EV.c.id)
        .where(_due(now))
        .order_by(_EV.c.priority.desc(), _EV.c.next_attempt_at)
        .limit(limit)
    )
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        chosen = chosen.with_for_update(skip_locked=True)
    claimed = (
        update(OutboxEvent)
        .where(OutboxEvent.id.in_(chosen.scalar_subquery()))  # type: ignore[attr-defined]
        .values(state="sending", lease_owner=owner, lease_until=now + timedelta(seconds=lease_s), updated_at=now)
        .returning(OutboxEvent)
        .execution_options(synchronize_session=False)
    )
    events = list((await session.execute(claimed)).scalars())
    return sorted(events, key=lambda e: (-e.priority, e.next_attempt_at))


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


async def renew_leases(
    session: AsyncSession, *, owner: str, ids: Sequence[str], now: datetime, lease_s: float
) -> set[str]:
    """Extend this worker's lease on ``ids``; returns the ids it still holds (others were taken over)."""
    if not ids:
        return set()
    held = and_(_EV.c.id.in_(sorted(ids)), _EV.c.lease_owner == owner, _EV.c.state == "sending")
    await session.execute(update(_EV).where(held).values(lease_until=now + timedelta(seconds=lease_s)))
    return set((await session.execute(select(_EV.c.id).where(held))).scalars())


async def unlease_events(session: AsyncSession, *, owner: str, ids: Sequence[str], now: datetime) -> None:
    """Hand back events claimed but not attempted (worker stopping): due again at once, for anyone."""
    if not ids:
        return
    await session.execute(
        update(_EV)
        .where(_EV.c.id.in_(sorted(ids)), _EV.c.lease_owner == owner, _EV.c.state == "sending")
        .values(state=case((_EV.c.attempts == 0, "pending"), else_="deferred"), lease_owner=None,
                lease_until=None, updated_at=now)
    )


async def recipient_rows(session: AsyncSession, event_ids: Sequence[str]) -> dict[str, list[RowMapping]]:
    """Plain rows (no ORM objects: this is the hot path) of the events' recipients, by event."""
    if not event_ids:
        return {}
    rows = await session.execute(
        select(_RC.c.id, _RC.c.event_id, _RC.c.address, _RC.c.message_id, _RC.c.state, _RC.c.attempts,
               _RC.c.next_attempt_at, _RC.c.last_code, _RC.c.last_reply, _RC.c.without_attachment,
               _RC.c.sent_at, _RC.c.created_at)
        .where(_RC.c.event_id.in_(event_ids))
        .order_by(_RC.c.address)
    )
    grouped: dict[str, list[RowMapping]] = defaultdict(list)
    for row in rows.mappings():
        grouped[row["event_id"]].append(row)
    return grouped


async def update_recipients(session: AsyncSession, values: list[dict[str, object]]) -> None:
    """Write recipients' new state (one executemany). Each dict has: rid, state, attempts, next_at,
    code, reply, without, sent_at, updated."""
    if not values:
        return
    statement = (
        update(_RC)
        .where(_RC.c.id == bindparam("rid"))
        .values(state=bindparam("state"), attempts=bindparam("attempts"), next_attempt_at=bindparam("next_at"),
                last_code=bindparam("code"), last_reply=bindparam("reply"),
                without_attachment=bindparam("without"), sent_at=bindparam("sent_at"),
                updated_at=bindparam("updated"))
    )
    await (await session.connection()).execute(statement, values)


async def upsert_recipients(session: AsyncSession, rows: list[dict[str, object]]) -> None:
    """Insert recipients first seen in this round, with their outcome (one executemany).

    Rows are written when the first attempt is recorded (the Message-ID is derived from
    (event, address), so nothing needs storing before the send). A row already there (a
    worker that took over an expired lease recorded first) gets this outcome on top.
    """
    if not rows:
        return
    dialect = session.bind.dialect.name if session.bind is not None else ""
    if dialect not in ("postgresql", "sqlite"):  # no ON CONFLICT: a plain insert (the unique constraint guards)
        await session.execute(insert(_RC), rows)
        return
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_RC)
    new = statement.excluded
    upsert = statement.on_conflict_do_update(
        index_elements=[_RC.c.event_id, _RC.c.address],
        set_={"state": new.state, "attempts": _RC.c.attempts + new.attempts, "next_attempt_at": new.next_attempt_at,
              "last_code": new.last_code, "last_reply": new.last_reply, "sent_at": new.sent_at,
              "without_attachment": or_(_RC.c.without_attachment, new.without_attachment),
              "updated_at": new.updated_at},
    )
    await session.execute(upsert, rows)


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
    if not wanted:
        return {}
    rows = await session.execute(select(Unit).where(Unit.id.in_(wanted)))  # type: ignore[attr-defined]
    return {u.id: u for u in rows.scalars()}


async def documents_by_id(session: AsyncSession, ids: Iterable[str | None]) -> dict[str, Document]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    rows = await session.execute(select(Document).where(Document.id.in_(wanted)))  # type: ignore[attr-defined]
    return {d.id: d for d in rows.scalars()}


async def documents_with_verdicts(
    session: AsyncSession, ids: Iterable[str | None]
) -> dict[str, tuple[Document, str | None]]:
    """Documents with the verdict of their latest verification, in one query."""
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    latest = (
        select(VerificationRecord.verdict)  # type: ignore[call-overload]
        .where(VerificationRecord.document_id == Document.id)
        .order_by(VerificationRecord.created_at.desc())  # type: ignore[attr-defined]
        .limit(1)
        .scalar_subquery()
    )
    rows = await session.execute(select(Document, latest).where(Document.id.in_(wanted)))  # type: ignore[attr-defined]
    return {doc.id: (doc, verdict) for doc, verdict in rows.all()}


async def deliveries_by_id(session: AsyncSession, ids: Iterable[str | None]) -> dict[str, Delivery]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    rows = await session.execute(select(Delivery).where(Delivery.id.in_(wanted)))  # type: ignore[attr-defined]
    return {d.id: d for d in rows.scalars()}


async def verdicts_by_document(session: AsyncSession, ids: Iterable[str | None]) -> dict[str, str]:
    """The latest verification verdict of each document."""
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    rows = await session.execute(
        select(VerificationRecord.document_id, VerificationRecord.verdict)  # type: ignore[call-overload]
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
