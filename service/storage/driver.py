"""Hot statements sent straight to the SQLite driver, SQLAlchemy's SQL and types kept.

Through SQLAlchemy's execution, every statement pays for its result machinery and every
row's parameters pass through per-row processing in Python. A caller that runs a handful
of statements over many rows it already holds as plain values (the mail worker, per batch)
sends them to the driver directly, inside the session's transaction (SQLAlchemy still
begins and commits it):

* the SQL text is SQLAlchemy's own, compiled once per statement from the Core construct;
* values are converted by the columns' own types (``bind_processor`` /
  ``result_processor``), so what is stored and read back is exactly what SQLAlchemy
  would store and read;
* one execute (and fetch) or executemany on a cursor of the connection: with the service's
  SQLite connections (``storage/sqlite_driver.py``) that runs on the event loop, no trip.

Other dialects (PostgreSQL: asyncpg has no thread) execute the same construct through
SQLAlchemy unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, Select
from sqlalchemy.engine.interfaces import Compiled
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase

__all__ = ["execute_many", "fetch"]

Processor = Callable[[Any], Any]
Statement = Select[Any] | UpdateBase  # a module constant: plans are kept per statement object
# Rows converted between two turns of the event loop (~50 µs): callers share it (SMTP senders).
_YIELD_EVERY = 16


@dataclass(frozen=True, slots=True)
class _Plan:
    """A statement compiled for one dialect, with the converters of its parameters and columns."""

    statement: Statement  # kept alive: plans are looked up by its id()
    compiled: SQLCompiler
    binds: Mapping[str, Processor]
    defaults: Mapping[str, Any]  # values the construct carries itself (literals, constants)
    columns: tuple[tuple[int, Processor], ...]  # result columns that need converting, by position


_plans: dict[tuple[int, str], _Plan] = {}


def _plan(statement: Statement, dialect: Dialect) -> _Plan:
    key = (id(statement), dialect.name)
    plan = _plans.get(key)
    if plan is None:
        compiled: Compiled = statement.compile(dialect=dialect)
        if not isinstance(compiled, SQLCompiler) or compiled.positiontup is None:
            raise TypeError(f"{dialect.name} does not compile to positional SQL")
        binds, defaults = {}, {}
        for bind, name in compiled.bind_names.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                binds[name] = processor
            if not bind.required:
                defaults[name] = bind.effective_value
        selected = getattr(statement, "exported_columns", ())
        processors = (c.type.dialect_impl(dialect).result_processor(dialect, None) for c in selected)
        columns = tuple((at, f) for at, f in enumerate(processors) if f is not None)
        plan = _plans[key] = _Plan(statement, compiled, binds, defaults, columns)
    return plan


_BOUND = "docex.driver"  # session.info key: (transaction, connection, driver connection)


async def _sqlite(session: AsyncSession) -> tuple[AsyncConnection, Any]:
    """The session's connection (its transaction begun), and the aiosqlite connection under it, if SQLite.

    Kept in the session for the rest of its transaction: asking the session again costs two
    greenlet switches per statement, more than a small statement itself.
    """
    bound = session.info.get(_BOUND)
    if bound is not None and bound[0] is session.sync_session.get_transaction():
        return bound[1], bound[2]
    conn = await session.connection()
    driver = None
    if conn.dialect.name == "sqlite":
        driver = (await conn.get_raw_connection()).driver_connection
        if driver is None:
            raise RuntimeError("the database connection is closed")
    session.info[_BOUND] = (session.sync_session.get_transaction(), conn, driver)
    return conn, driver


async def fetch(session: AsyncSession, statement: Statement, params: Mapping[str, Any]) -> list[Sequence[Any]]:
    """Execute a statement that returns rows (SELECT, or DML … RETURNING); rows of converted values.

    ``expanding`` parameters (``IN`` lists) are allowed here.
    """
    conn, driver = await _sqlite(session)
    if driver is None:
        return list(await conn.execute(statement, dict(params)))
    plan = _plan(statement, conn.dialect)
    state = plan.compiled.construct_expanded_state(dict(params))
    processors = {**plan.binds, **state.processors}
    names = state.positiontup or []
    args = [_convert(processors.get(n), v) for n, v in zip(names, state.positional_parameters, strict=True)]
    async with driver.cursor() as cursor:  # the service's SQLite cursors run it on the loop, in one step
        await cursor.execute(state.statement, args)
        rows = await cursor.fetchall()
    out: list[Sequence[Any]] = []
    for n, row in enumerate(rows, 1):
        out.append(_converted(row, plan.columns))
        if n % _YIELD_EVERY == 0:
            await asyncio.sleep(0)
    return out


def _converted(row: Sequence[Any], columns: tuple[tuple[int, Processor], ...]) -> list[Any]:
    values = list(row)
    for at, convert in columns:
        values[at] = convert(values[at])
    return values


async def execute_many(session: AsyncSession, statement: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
    """Execute a statement once per row of parameters (INSERT, UPDATE), in one trip.

    Each row names every parameter the construct does not carry itself. Values repeated
    across rows (the same moment, the same owner) are converted once.
    """
    if not rows:
        return
    conn, driver = await _sqlite(session)
    if driver is None:
        await conn.execute(statement, [dict(r) for r in rows])
        return
    plan = _plan(statement, conn.dialect)
    names = plan.compiled.positiontup or []
    fixed = {n: plan.defaults[n] for n in names if n not in rows[0] and n in plan.defaults}
    convert = [(at, _memo(plan.binds[n])) for at, n in enumerate(names) if n in plan.binds]
    args = []
    for count, row in enumerate(rows, 1):
        values = [row[n] if n in row else fixed[n] for n in names]
        for at, f in convert:
            values[at] = f(values[at])
        args.append(values)
        if count % _YIELD_EVERY == 0:
            await asyncio.sleep(0)
    async with driver.cursor() as cursor:
        await cursor.executemany(plan.compiled.string, args)


def _convert(processor: Processor | None, value: Any) -> Any:
    return value if processor is None else processor(value)


def _memo(convert: Processor) -> Processor:
    last: list[Any] = [object(), None]

    def run(value: Any) -> Any:
        if value is not last[0]:
            last[0], last[1] = value, convert(value)
        return last[1]

    return run
