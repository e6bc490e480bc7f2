"""Inserting thousands of rows in one step, inside the session's transaction.

SQLAlchemy's executemany processes every parameter of every row in Python; for a
send to 10,000 units that is most of the request. Here rows go to the driver as
plain tuples: ``executemany`` on SQLite, ``COPY`` on PostgreSQL. Values are
converted exactly as the columns' types would store them. A few rows go through
``storage.driver`` instead (COPY looks the table's columns up first).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Table
from sqlalchemy.ext.asyncio import AsyncSession

from service.storage import driver
from service.storage.driver import memo_last
from service.storage.rows import insert_into
from service.storage.types import UTCDateTime

__all__ = ["bulk_insert"]

Convert = Callable[[Any], Any]

# From this many rows on, PostgreSQL gets them through COPY; below, rows take the driver
# path every hot statement takes (``storage.driver``: compiled once, the types' converters).
COPY_FROM = 100


def _naive_utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None)


def _sqlite_time(value: datetime | None) -> str | None:
    # The text form SQLAlchemy's SQLite DATETIME type writes and reads back.
    naive = _naive_utc(value)
    return None if naive is None else naive.strftime("%Y-%m-%d %H:%M:%S.%f")


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _converters(table: Table, dialect: str) -> list[tuple[int, Convert]]:
    """The columns whose values need converting, by position, with their converters (each
    remembers its last value: rows repeat the same moment and the same payload object)."""
    out: list[tuple[int, Convert]] = []
    for at, column in enumerate(table.columns):
        if isinstance(column.type, UTCDateTime):
            out.append((at, memo_last(_sqlite_time if dialect == "sqlite" else _naive_utc)))
        elif isinstance(column.type, JSON):
            out.append((at, memo_last(_json)))
    return out


def _records(rows: Sequence[dict[str, Any]], names: list[str], convert: list[tuple[int, Convert]]) -> list[Any]:
    records = []
    for row in rows:
        values = [row[n] for n in names]
        for at, f in convert:
            values[at] = f(values[at])
        records.append(tuple(values))
    return records


async def bulk_insert(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with every column) in the session's transaction."""
    if not rows:
        return
    if len(rows) < COPY_FROM:
        await driver.execute_many(session, insert_into(table), rows)
        return
    dialect = driver.dialect_of(session)
    names = [c.name for c in table.columns]
    records = _records(rows, names, _converters(table, dialect))
    raw = await driver.raw_connection(session)  # the transaction begun: COPY is not a statement of it
    if dialect in ("postgresql", "sqlite"):
        with driver.sqlalchemy_errors():  # as SQLAlchemy would have said it: callers know that one
            await _driver_insert(raw, dialect, table.name, names, records)
    else:
        await session.execute(insert_into(table), list(rows))


async def _driver_insert(raw: Any, dialect: str, name: str, columns: list[str],
                         records: list[tuple[Any, ...]]) -> None:
    if dialect == "postgresql":
        await raw.copy_records_to_table(name, records=records, columns=columns)
    else:  # through a cursor: the service's SQLite connections run it without a thread hand-off
        marks = ", ".join("?" for _ in columns)
        async with raw.cursor() as cursor:
            await cursor.executemany(f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({marks})", records)
