"""New rows written with one Core INSERT, without the ORM's unit of work.

For objects that the request creates and only reads back: the INSERT goes out at
once (straight to the driver, ``storage.driver``), and the object stays
outside the session (nothing to flush, track or expire). Objects added to the session
are not flushed first: rows inserted here must not refer to one. Such objects can be
built with ``Model.model_construct`` (defaults applied, no ORM attribute events).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Insert, Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from service.storage import driver

__all__ = ["insert_into", "insert_rows"]

_INSERTS: dict[str, Insert] = {}


def insert_into(table: Table) -> Insert:
    """The table's plain INSERT, one object per table (``storage.driver`` keeps plans per object)."""
    stmt = _INSERTS.get(table.name)
    if stmt is None:
        stmt = _INSERTS[table.name] = insert(table)
    return stmt


async def insert_rows(session: AsyncSession, objects: Sequence[Any]) -> None:
    """INSERT ``objects`` (instances of one table model, every column set) in the session's transaction."""
    if not objects:
        return
    table: Table = type(objects[0]).__table__
    names = [(c.name, c.key) for c in table.columns]
    rows = [{name: getattr(obj, key) for name, key in names} for obj in objects]
    await driver.execute_many(session, insert_into(table), rows)
