"""Inbox, outbox and per-recipient status, with filters and cursor pagination."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVarTuple

from sqlalchemy import ColumnElement, Row, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped
from sqlalchemy.sql import Select
from sqlmodel import col

from service.auth import Principal
from service.documents.access import visible_document
from service.documents.models import Delivery, Document
from service.errors import InvalidInputError
from service.text import VN_TZ, fold, search_key
from service.units import Unit

__all__ = ["ListFilters", "Page", "delivery_counts", "document_deliveries", "inbox", "outbox"]

_Ts = TypeVarTuple("_Ts")


@dataclass(frozen=True)
class ListFilters:
    """Filters common to listings; dates are Vietnam calendar days."""

    status: str | None = None
    urgency: int | None = None
    since: date | None = None
    until: date | None = None
    q: str | None = None
    limit: int = 50
    cursor: str | None = None


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None


def _encode(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _decode(cursor: str, size: int) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError("the cursor is not one this service gave out", field="cursor") from exc
    if not isinstance(values, list) or len(values) != size:
        raise InvalidInputError("the cursor is not one this service gave out", field="cursor")
    return values


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _text_filter(q: str) -> ColumnElement[bool]:
    # Typed without diacritics ("ke hoach") → compare folded; typed with them → exact letters.
    if fold(q) == search_key(q):
        return col(Document.search_folded).like(_like(fold(q)), escape="\\")
    return col(Document.search_text).like(_like(search_key(q)), escape="\\")


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, VN_TZ)


def _common(stmt: Select[*_Ts], f: ListFilters, created: Mapped[datetime]) -> Select[*_Ts]:
    if f.urgency is not None:
        stmt = stmt.where(col(Document.urgency) == f.urgency)
    if f.since is not None:
        stmt = stmt.where(created >= _day_start(f.since))
    if f.until is not None:
        stmt = stmt.where(created < _day_start(f.until) + timedelta(days=1))
    if f.q:
        stmt = stmt.where(_text_filter(f.q))
    return stmt


async def inbox(session: AsyncSession, principal: Principal, f: ListFilters) -> Page:
    """Deliveries to the caller's unit, most urgent first, then newest."""
    stmt = (select(Delivery, Document, col(Unit.name))
            .join(Document, col(Document.id) == col(Delivery.document_id))
            .join(Unit, col(Unit.id) == col(Delivery.from_unit_id))
            .where(col(Delivery.recipient_unit_id) == principal.unit_id))
    if f.status:
        stmt = stmt.where(col(Delivery.status) == f.status)
    stmt = _common(stmt, f, col(Delivery.created_at))
    keys = (col(Delivery.urgency), col(Delivery.created_at), col(Delivery.id))
    rows, nxt = await _page(session, stmt, keys, f, lambda r: [r[0].urgency, r[0].created_at.isoformat(), r[0].id])
    return Page(rows, nxt)


async def outbox(session: AsyncSession, principal: Principal, f: ListFilters) -> Page:
    """Documents registered by the caller's unit, newest first, with status counts."""
    stmt = select(Document).where(col(Document.sender_unit_id) == principal.unit_id)
    stmt = _common(stmt, f, col(Document.created_at))
    keys = (col(Document.created_at), col(Document.id))
    rows, nxt = await _page(session, stmt, keys, f, lambda r: [r[0].created_at.isoformat(), r[0].id])
    counts = await delivery_counts(session, [r[0].id for r in rows])
    return Page([(r[0], counts.get(r[0].id, {})) for r in rows], nxt)


async def _page(session: AsyncSession, stmt: Select[*_Ts], keys: tuple[Mapped[Any], ...], f: ListFilters,
                cursor_of: Callable[[Row[*_Ts]], list[Any]]) -> tuple[list[Row[*_Ts]], str | None]:
    if f.cursor:
        values = _decode(f.cursor, len(keys))
        stmt = stmt.where(_after(keys, values))
    stmt = stmt.order_by(*(k.desc() for k in keys)).limit(f.limit + 1)
    rows = list((await session.execute(stmt)).all())
    more = len(rows) > f.limit
    rows = rows[: f.limit]
    return rows, (_encode(cursor_of(rows[-1])) if more and rows else None)


def _after(keys: tuple[Mapped[Any], ...], values: list[Any]) -> ColumnElement[bool]:
    """Keyset condition for descending order: rows strictly after ``values``."""
    parsed = [datetime.fromisoformat(v) if isinstance(v, str) and "T" in v else v for v in values]
    clauses = []
    for i, key in enumerate(keys):
        equal = [keys[j] == parsed[j] for j in range(i)]
        clauses.append(and_(*equal, key < parsed[i]))
    return or_(*clauses)


async def delivery_counts(session: AsyncSession, doc_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per document, how many deliveries stand at each status."""
    if not doc_ids:
        return {}
    stmt = (select(col(Delivery.document_id), col(Delivery.status), func.count())
            .where(col(Delivery.document_id).in_(doc_ids))
            .group_by(col(Delivery.document_id), col(Delivery.status)))
    out: dict[str, dict[str, int]] = {}
    for doc_id, status, n in (await session.execute(stmt)).all():
        out.setdefault(doc_id, {})[status] = n
    return out


async def document_deliveries(session: AsyncSession, principal: Principal, doc_id: str,
                              f: ListFilters) -> tuple[Document, dict[str, int], Page]:
    """For the sender (or an auditor): every recipient's status, counted and paged.

    A recipient sees only the deliveries it made by forwarding. Raises DocumentNotFoundError.
    """
    doc = await visible_document(session, principal, doc_id)
    stmt = select(Delivery, Unit).join(Unit, col(Unit.id) == col(Delivery.recipient_unit_id)).where(
        col(Delivery.document_id) == doc.id)
    sees_all = doc.sender_unit_id == principal.unit_id or principal.has("auditor")
    if not sees_all:
        stmt = stmt.where(or_(col(Delivery.from_unit_id) == principal.unit_id,
                              col(Delivery.recipient_unit_id) == principal.unit_id))
    if f.status:
        stmt = stmt.where(col(Delivery.status) == f.status)
    keys = (col(Delivery.created_at), col(Delivery.id))
    rows, nxt = await _page(session, stmt, keys, f, lambda r: [r[0].created_at.isoformat(), r[0].id])
    counts = (await delivery_counts(session, [doc.id])).get(doc.id, {}) if sees_all else {}
    return doc, counts, Page(rows, nxt)
