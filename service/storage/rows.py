"""New rows written with one Core INSERT, without the ORM's unit of work.

For objects that the request creates and only reads back: the INSERT goes out at
once (straight to the driver, ``storage.driver``), and the object stays
outside the session (nothing to flush, track or expire). Objects added to the session
are not flushed first: rows inserted here must not refer to one. Such objects are
built with ``construct`` (defaults applied, no validation, no ORM attribute events).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from datetime import date, datetime
from enum import Enum
from typing import Any, TypeVar, cast

from pydantic import BaseModel
from sqlalchemy import ColumnElement, CursorResult, Insert, Table, insert, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from service.storage import driver

__all__ = ["construct", "insert_into", "insert_rows", "update_if"]

M = TypeVar("M", bound=BaseModel)

_INSERTS: dict[str, Insert] = {}
# Per model: (field, default factory, default) for every field that has a default.
_DEFAULTS: dict[type[BaseModel], tuple[tuple[str, Callable[[], Any] | None, Any], ...]] = {}
_IMMUTABLE = (str, int, float, bool, bytes, type(None), Enum, date, datetime, tuple, frozenset)


def construct(model: type[M], **values: Any) -> M:
    """``model.model_construct(**values)`` with the model's defaults filled in here.

    pydantic's ``model_construct`` inspects the signature of every default factory on
    every call (to learn whether it takes the validated data); these models' factories
    take nothing, so they are read once per model and called directly.
    """
    defaults = _DEFAULTS.get(model)
    if defaults is None:
        defaults = _DEFAULTS[model] = _defaults_of(model)
    for name, factory, default in defaults:
        if name not in values:
            if factory is not None:
                values[name] = factory()
            else:
                values[name] = default if isinstance(default, _IMMUTABLE) else copy.deepcopy(default)
    return model.model_construct(**values)


def _defaults_of(model: type[BaseModel]) -> tuple[tuple[str, Callable[[], Any] | None, Any], ...]:
    out: list[tuple[str, Callable[[], Any] | None, Any]] = []
    for name, info in model.model_fields.items():
        if info.is_required():
            continue
        if info.default_factory is not None and info.default_factory_takes_validated_data:
            raise TypeError(f"{model.__name__}.{name}: a default factory that takes the data is not supported")
        out.append((name, info.default_factory, info.default))  # type: ignore[arg-type]
    return tuple(out)


def insert_into(table: Table) -> Insert:
    """The table's plain INSERT, one object per table (``storage.driver`` keeps plans per object)."""
    stmt = _INSERTS.get(table.name)
    if stmt is None:
        stmt = _INSERTS[table.name] = insert(table)
    return stmt


async def insert_rows(session: AsyncSession, objects: Sequence[Any], *, held: bool = False) -> None:
    """INSERT ``objects`` (instances of one table model, every column set) in the session's
    transaction; ``held``: with its last statement (``driver.defer``)."""
    if not objects:
        return
    table: Table = type(objects[0]).__table__
    names = [(c.name, c.key) for c in table.columns]
    rows = [{name: getattr(obj, key) for name, key in names} for obj in objects]
    await (driver.defer if held else driver.execute_many)(session, insert_into(table), rows)


async def update_if(session: AsyncSession, row: Any, *conditions: ColumnElement[bool], **values: Any) -> bool:
    """``UPDATE`` ``row``'s own row ``SET values`` if it still meets ``conditions`` (what the
    caller read and checked); whether it did. Then ``row`` holds ``values`` as saved: no
    second UPDATE at flush.

    Of requests racing on one row exactly one matches; on PostgreSQL the others wait for
    its row lock, then find it changed.
    """
    model = type(row)
    stmt = (update(model).where(model.id == row.id, *conditions).values(values)
            .execution_options(synchronize_session=False))
    # An UPDATE's result is a CursorResult; AsyncSession.execute is only typed as Result.
    if cast(CursorResult[Any], await session.execute(stmt)).rowcount != 1:
        return False
    for key, value in values.items():
        set_committed_value(row, key, value)
    return True
