"""Overdue registration: reminders for deliveries still at status 01.

A delivery that arrives is due for registration by the end of its working day
(17:00 Asia/Ho_Chi_Minh, Monday–Friday; after 17:00 or at a weekend: the next
working day's end). Past that: an ``overdue_reminder`` to the recipient unit.
Past the end of the following working day: an ``overdue_parent`` to its parent.
Each at most once per delivery, so the sweep can run as often as wanted.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.documents.models import Delivery, Document
from service.outbox.models import OutboxEvent
from service.storage.db import Database
from service.units.models import Unit

from .config import MailConfig

__all__ = ["registration_deadline", "next_workday_end", "sweep_overdue"]

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def next_workday_end(moment: datetime, end_hour: int = 17, *, strictly_after: bool = False) -> datetime:
    """The first working-day end (``end_hour`` local, Mon–Fri) at or after ``moment`` (UTC aware)."""
    local = moment.astimezone(VN_TZ)
    day = local.date()
    while True:
        end = datetime.combine(day, time(end_hour), VN_TZ)
        if day.weekday() < 5 and (end > local if strictly_after else end >= local):
            return end
        day += timedelta(days=1)


def registration_deadline(arrived_at: datetime, end_hour: int = 17) -> datetime:
    return next_workday_end(arrived_at, end_hour)


def escalation_deadline(arrived_at: datetime, end_hour: int = 17) -> datetime:
    return next_workday_end(registration_deadline(arrived_at, end_hour), end_hour, strictly_after=True)


def _not_sent(kind: str) -> ColumnElement[bool]:
    return ~exists().where(and_(col(OutboxEvent.delivery_id) == col(Delivery.id), col(OutboxEvent.kind) == kind))


async def sweep_overdue(db: Database, config: MailConfig, now: datetime) -> int:
    """Queue the reminders that are due now; returns how many were queued."""
    async with db.session() as session:
        created = await _sweep(session, now, config.workday_end_hour)
        await session.commit()
    return created


async def _sweep(session: AsyncSession, now: datetime, end_hour: int) -> int:
    # Nothing that arrived less than a few hours ago can be overdue yet: a cheap filter.
    rows = await session.execute(
        select(Delivery, Document, Unit)
        .join(Document, col(Document.id) == col(Delivery.document_id))
        .join(Unit, col(Unit.id) == col(Delivery.recipient_unit_id))
        .where(col(Delivery.status) == "01", col(Delivery.created_at) < now, _not_sent("overdue_parent"))
    )
    candidates = rows.all()
    reminded = await _already(session, [d.id for d, _, _ in candidates])
    created = 0
    for delivery, document, unit in candidates:
        if delivery.id not in reminded and now >= registration_deadline(delivery.created_at, end_hour):
            session.add(_event("overdue_reminder", delivery, document, unit.id, unit.name, now))
            created += 1
        elif unit.parent_id and now >= escalation_deadline(delivery.created_at, end_hour):
            session.add(_event("overdue_parent", delivery, document, unit.parent_id, unit.name, now))
            created += 1
    await session.flush()
    return created


async def _already(session: AsyncSession, delivery_ids: list[str]) -> set[str]:
    if not delivery_ids:
        return set()
    rows = await session.execute(
        select(col(OutboxEvent.delivery_id)).where(
            col(OutboxEvent.kind) == "overdue_reminder", col(OutboxEvent.delivery_id).in_(delivery_ids)
        )
    )
    return {i for i in rows.scalars() if i}


def _event(kind: str, delivery: Delivery, document: Document, unit_id: str, overdue_unit: str,
           now: datetime) -> OutboxEvent:
    return OutboxEvent(
        kind=kind, unit_id=unit_id, document_id=document.id, delivery_id=delivery.id, priority=delivery.urgency,
        created_at=now, updated_at=now, next_attempt_at=now,
        payload={"number_notation": document.number_notation, "subject": document.subject,
                 "urgency": document.urgency, "overdue_unit_name": overdue_unit},
    )
