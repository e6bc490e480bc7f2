"""Inbox, outbox and per-recipient status, with filters and cursor pagination."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVarTuple

from sqlalchemy import ColumnElement, Row, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped
from sqlalchemy.sql import Select
from sqlmodel import col

from service.auth import Principal
from service.documents.access import audited_units, sees_every_recipient, visible_document
from service.documents.models import Delivery, Document
from service.documents.schemas import URGENCY_NAMES
from service.documents.statuses import STATUS_NAMES
from service.errors import InvalidInputError
from service.text import VN_TZ, fold, search_key, search_keys, without_controls
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

    def __post_init__(self) -> None:
        """Raises InvalidInputError for filters that can only be a mistake."""
        if self.status is not None and self.status not in STATUS_NAMES:
            raise InvalidInputError(f"there is no status {self.status!r}; use one of {', '.join(STATUS_NAMES)}",
                                    field="status")
        if self.since is not None and self.until is not None and self.since > self.until:
            raise InvalidInputError(f"'since' ({self.since}) is after 'until' ({self.until}), so nothing can "
                                    "match; swap the two dates", field="since")


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None


# A key column of a listing's order, with the check its cursor value must pass.
_Key = tuple[Mapped[Any], Callable[[Any], Any]]

# An issued cursor is about 100 characters; refusing longer ones before decoding keeps
# any input from making the decoder work hard or nest deep.
_CURSOR_MAX_CHARS = 256
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_ROW_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_BAD_CURSOR = "this page link is not valid (it may be from an older listing); start again from the first page"


def _encode(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _decode(cursor: str, keys: tuple[_Key, ...]) -> list[Any]:
    """The key values in a cursor this service gave out. Raises InvalidInputError for any other."""
    try:
        values = _unpack(cursor)
        if not isinstance(values, list) or len(values) != len(keys):
            raise ValueError("not the shape of this listing's cursor")
        return [check(value) for (_, check), value in zip(keys, values, strict=True)]
    except ValueError as exc:  # binascii.Error and json's errors are ValueErrors too
        raise InvalidInputError(_BAD_CURSOR, field="cursor") from exc


def _unpack(cursor: str) -> Any:
    if len(cursor) > _CURSOR_MAX_CHARS or not _BASE64URL.fullmatch(cursor):
        raise ValueError("not a cursor")
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def _urgency(value: Any) -> int:
    if type(value) is not int or not 0 <= value < len(URGENCY_NAMES):  # bool is an int to Python, not to us
        raise ValueError("not an urgency")
    return value


def _moment(value: Any) -> datetime:
    # Issued as ISO 8601 in UTC; a time without offset or in another zone was not issued here
    # (and far from UTC could not be converted at the ends of the calendar).
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError("not a time")
    moment = datetime.fromisoformat(value)
    if moment.utcoffset() != timedelta(0):
        raise ValueError("not a UTC time")
    return moment


def _row_id(value: Any) -> str:
    if not isinstance(value, str) or not _ROW_ID.fullmatch(value):
        raise ValueError("not a row id")
    return value


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _text_filter(q: str) -> ColumnElement[bool]:
    # Control characters (a NUL pasted along with a number) are never in stored text, and
    # PostgreSQL refuses a NUL in a parameter: read them as the spaces they stand between.
    q = without_controls(q)
    # Typed without diacritics ("ke hoach") → compare folded; typed with them → the same
    # letters, whichever vowel of oa, oe or uy carries the tone mark (hòa, hoà).
    if fold(q) == search_key(q):
        return col(Document.search_folded).like(_like(fold(q)), escape="\\")
    return or_(*(col(Document.search_text).like(_like(key), escape="\\") for key in search_keys(q)))


def _day_start(day: date, later: int = 0) -> datetime | None:
    """When the Vietnam calendar day ``later`` days after ``day`` begins, in UTC.

    None past either end of the calendar: a clerk's 0001-01-01 or 9999-12-31 means
    "no limit", and nothing stored is that early or late, so the bound is dropped.
    """
    try:
        return datetime.combine(day + timedelta(days=later), time.min, VN_TZ).astimezone(UTC)
    except OverflowError:
        return None


def _common(stmt: Select[*_Ts], f: ListFilters, created: Mapped[datetime]) -> Select[*_Ts]:
    if f.urgency is not None:
        stmt = stmt.where(col(Document.urgency) == f.urgency)
    if f.q:
        stmt = stmt.where(_text_filter(f.q))
    return _days(stmt, f, created)


def _days(stmt: Select[*_Ts], f: ListFilters, created: Mapped[datetime]) -> Select[*_Ts]:
    start = _day_start(f.since) if f.since is not None else None
    end = _day_start(f.until, later=1) if f.until is not None else None
    if start is not None:
        stmt = stmt.where(created >= start)
    if end is not None:
        stmt = stmt.where(created < end)
    return stmt


async def inbox(session: AsyncSession, principal: Principal, f: ListFilters) -> Page:
    """Deliveries to the caller's unit, most urgent first, then newest. Raises InvalidInputError."""
    stmt = (select(Delivery, Document, col(Unit.name))
            .join(Document, col(Document.id) == col(Delivery.document_id))
            .join(Unit, col(Unit.id) == col(Delivery.from_unit_id))
            .where(col(Delivery.recipient_unit_id) == principal.unit_id))
    if f.status:
        stmt = stmt.where(col(Delivery.status) == f.status)
    stmt = _common(stmt, f, col(Delivery.created_at))
    keys = ((col(Delivery.urgency), _urgency), (col(Delivery.created_at), _moment), (col(Delivery.id), _row_id))
    rows, nxt = await _page(session, stmt, keys, f, lambda r: [r[0].urgency, r[0].created_at.isoformat(), r[0].id])
    return Page(rows, nxt)


async def outbox(session: AsyncSession, principal: Principal, f: ListFilters) -> Page:
    """Documents registered by the caller's unit, newest first, with status counts. Raises InvalidInputError."""
    stmt = select(Document).where(col(Document.sender_unit_id) == principal.unit_id)
    if f.status:  # e.g. 02: the documents that some recipient returned
        stmt = stmt.where(exists().where(col(Delivery.document_id) == col(Document.id),
                                         col(Delivery.status) == f.status))
    stmt = _common(stmt, f, col(Document.created_at))
    keys = ((col(Document.created_at), _moment), (col(Document.id), _row_id))
    rows, nxt = await _page(session, stmt, keys, f, lambda r: [r[0].created_at.isoformat(), r[0].id])
    counts = await delivery_counts(session, [r[0].id for r in rows])
    return Page([(r[0], counts.get(r[0].id, {})) for r in rows], nxt)


async def _page(session: AsyncSession, stmt: Select[*_Ts], keys: tuple[_Key, ...], f: ListFilters,
                cursor_of: Callable[[Row[*_Ts]], list[Any]]) -> tuple[list[Row[*_Ts]], str | None]:
    columns = tuple(column for column, _ in keys)
    if f.cursor:
        stmt = stmt.where(_after(columns, _decode(f.cursor, keys)))
    stmt = stmt.order_by(*(c.desc() for c in columns)).limit(f.limit + 1)
    rows = list((await session.execute(stmt)).all())
    more = len(rows) > f.limit
    rows = rows[: f.limit]
    return rows, (_encode(cursor_of(rows[-1])) if more and rows else None)


def _after(columns: tuple[Mapped[Any], ...], values: list[Any]) -> ColumnElement[bool]:
    """Keyset condition for descending order: rows strictly after ``values``."""
    clauses = []
    for i, column in enumerate(columns):
        equal = [columns[j] == values[j] for j in range(i)]
        clauses.append(and_(*equal, column < values[i]))
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
    """For the sender (and its auditors): every recipient's status, counted and paged.

    A recipient sees only its own delivery and those it made by forwarding; an auditor of a
    recipient, those of the units it audits. Raises DocumentNotFoundError,
    InvalidInputError.
    """
    if f.q or f.urgency is not None:
        raise InvalidInputError("one document's deliveries are filtered by status, since and until; "
                                "'q' and 'urgency' choose documents (use them on the inbox or outbox)")
    doc = await visible_document(session, principal, doc_id)
    stmt = select(Delivery, Unit).join(Unit, col(Unit.id) == col(Delivery.recipient_unit_id)).where(
        col(Delivery.document_id) == doc.id)
    sees_all = await sees_every_recipient(session, principal, doc)
    if not sees_all:
        # Its own unit's part; an auditor's, that of the units it audits.
        part = [col(Delivery.from_unit_id) == principal.unit_id, col(Delivery.recipient_unit_id) == principal.unit_id]
        if principal.has("auditor"):
            audited = audited_units(principal)
            part += [col(Delivery.from_unit_id).in_(audited), col(Delivery.recipient_unit_id).in_(audited)]
        stmt = stmt.where(or_(*part))
    if f.status:
        stmt = stmt.where(col(Delivery.status) == f.status)
    stmt = _days(stmt, f, col(Delivery.created_at))
    keys = ((col(Delivery.created_at), _moment), (col(Delivery.id), _row_id))
    rows, nxt = await _page(session, stmt, keys, f, lambda r: [r[0].created_at.isoformat(), r[0].id])
    counts = (await delivery_counts(session, [doc.id])).get(doc.id, {}) if sees_all else {}
    return doc, counts, Page(rows, nxt)
