"""Overdue registration: reminders for deliveries still at status 01.

A delivery that arrives is due for registration by the end of its working day
(17:00 Asia/Ho_Chi_Minh, Monday–Friday except public holidays; after 17:00, at a weekend
or on a holiday: the next working day's end). Past that: an ``overdue_reminder`` to the
recipient unit.
Past the end of the following working day: an ``overdue_parent`` to its parent.
Each at most once per delivery, so the sweep can run as often as wanted.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.documents.models import Delivery, Document
from service.outbox.models import OutboxEvent
from service.storage.bulk import bulk_insert
from service.storage.db import Database
from service.storage.types import new_id
from service.units.models import Unit

from .config import MailConfig

__all__ = ["FIXED_HOLIDAYS", "is_workday", "last_workday_end", "next_workday_end", "registration_deadline",
           "sweep_overdue"]

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
# The solar holidays of the Labour Code (2019, art. 112), the same every year: New Year,
# Reunification Day, Labour Day, National Day. Tết, the Hùng Kings' day (lunar dates), the day
# next to National Day and the days the government moves each year are the deployment's
# DOCEX_MAIL_HOLIDAYS.
FIXED_HOLIDAYS = frozenset({(1, 1), (4, 30), (5, 1), (9, 2)})


def is_workday(day: date, holidays: Collection[date] = ()) -> bool:
    return day.weekday() < 5 and (day.month, day.day) not in FIXED_HOLIDAYS and day not in holidays


def next_workday_end(moment: datetime, end_hour: int = 17, *, strictly_after: bool = False,
                     holidays: Collection[date] = ()) -> datetime:
    """The first working-day end (``end_hour`` local) at or after ``moment`` (UTC aware)."""
    local = moment.astimezone(VN_TZ)
    day = local.date()
    while True:
        end = datetime.combine(day, time(end_hour), VN_TZ)
        if is_workday(day, holidays) and (end > local if strictly_after else end >= local):
            return end
        day += timedelta(days=1)


def registration_deadline(arrived_at: datetime, end_hour: int = 17, holidays: Collection[date] = ()) -> datetime:
    return next_workday_end(arrived_at, end_hour, holidays=holidays)


def escalation_deadline(arrived_at: datetime, end_hour: int = 17, holidays: Collection[date] = ()) -> datetime:
    return next_workday_end(registration_deadline(arrived_at, end_hour, holidays), end_hour, strictly_after=True,
                            holidays=holidays)


def last_workday_end(moment: datetime, end_hour: int = 17, holidays: Collection[date] = ()) -> datetime:
    """The last working-day end (``end_hour`` local) at or before ``moment`` (UTC aware)."""
    local = moment.astimezone(VN_TZ)
    day = local.date()
    while True:
        end = datetime.combine(day, time(end_hour), VN_TZ)
        if is_workday(day, holidays) and end <= local:
            return end
        day -= timedelta(days=1)


def _said(kind: str) -> ColumnElement[bool]:
    return exists().where(and_(col(OutboxEvent.delivery_id) == col(Delivery.id), col(OutboxEvent.kind) == kind))


async def sweep_overdue(db: Database, config: MailConfig, now: datetime) -> int:
    """Queue the reminders that are due now; returns how many were queued."""
    async with db.session() as session:
        created = await _sweep(session, now, config.workday_end_hour, config.holidays)
        await session.commit()
    return created


# Only what a reminder names, never whole rows: after one send to every branch of a province,
# every sweep would otherwise load tens of thousands of objects to find none due.
_LATE = (select(col(Delivery.id), col(Delivery.urgency), col(Document.id), col(Document.number_notation),
                col(Document.subject), col(Document.urgency), col(Unit.id), col(Unit.name), col(Unit.parent_id))
         .join(Document, col(Document.id) == col(Delivery.document_id))
         .join(Unit, col(Unit.id) == col(Delivery.recipient_unit_id))
         .where(col(Delivery.status) == "01"))


async def _sweep(session: AsyncSession, now: datetime, end_hour: int, holidays: Collection[date]) -> int:
    # A delivery is past its registration deadline exactly when it arrived by the last working-day
    # end before now, and past its escalation deadline when it arrived by the one before that.
    due = last_workday_end(now, end_hour, holidays)
    escalate_by = last_workday_end(due - timedelta(microseconds=1), end_hour, holidays)
    reminders = await session.execute(_LATE.where(col(Delivery.created_at) <= due, ~_said("overdue_reminder")))
    escalations = await session.execute(_LATE.where(
        col(Delivery.created_at) <= escalate_by, col(Unit.parent_id).is_not(None), _said("overdue_reminder"),
        ~_said("overdue_parent")))
    events = [_event("overdue_reminder", row, row[6], now) for row in reminders.all()]
    events += [_event("overdue_parent", row, str(row[8]), now) for row in escalations.all()]
    if events:
        await bulk_insert(session, OutboxEvent.__table__, events)  # type: ignore[attr-defined]
    return len(events)


def _event(kind: str, row: Any, unit_id: str, now: datetime) -> dict[str, Any]:
    delivery_id, urgency, document_id, number_notation, subject, doc_urgency, _, unit_name, _ = row
    return {"id": new_id(), "kind": kind, "unit_id": unit_id, "document_id": document_id,
            "delivery_id": delivery_id, "priority": urgency, "state": "pending", "attempts": 0,
            "next_attempt_at": now, "lease_owner": None, "lease_until": None, "last_error": "",
            "created_at": now, "updated_at": now,
            "payload": {"number_notation": number_notation, "subject": subject, "urgency": doc_urgency,
                        "overdue_unit_name": unit_name}}
