"""Hot statements sent straight to the database driver, SQLAlchemy's SQL and types kept.

Through SQLAlchemy's execution, every statement pays for its result machinery and every
row's parameters pass through per-row processing in Python. The hot paths (upload, send,
the audit chain at commit, the mail worker's batches) send their statements to the driver
directly, inside the session's transaction (SQLAlchemy still begins and commits it):

* the SQL text is SQLAlchemy's own, compiled once per statement from the Core construct;
* values are converted by the columns' own types (``bind_processor`` /
  ``result_processor``), so what is stored and read back is exactly what SQLAlchemy
  would store and read;
* one execute (and fetch) or executemany on the driver connection under the session's:
  with the service's SQLite connections (``storage/sqlite_driver.py``) that runs on the
  event loop, no trip; with asyncpg it is asyncpg's own prepared-statement call, inside
  the transaction SQLAlchemy's adapter holds (begun first if no statement has run yet).

Any other driver executes the same construct through SQLAlchemy unchanged.

A read (a SELECT that locks nothing) sent before the transaction wrote anything runs
outside it on asyncpg: it sees what a read-committed transaction's first statement would
see, and BEGIN is not sent for it. On PostgreSQL, writes whose outcome the request does not
wait for can be held (``defer``) and sent with the transaction's last statement
(``fetch_last``, the audit chain's), each as a common table expression of that statement:
one trip for all of them and, when nothing wrote before, no BEGIN and no COMMIT either —
a single statement is a transaction of its own.

``fetch_now`` / ``execute_now`` do the same from inside SQLAlchemy's synchronous layer
(a session event such as the audit chain's ``before_commit``), on its ``Connection``.
A unique or foreign-key violation is raised as SQLAlchemy's ``IntegrityError``, as
``session.execute`` would raise it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Dialect,
    Insert,
    Select,
    and_,
    bindparam,
    event,
    func,
    insert,
    literal_column,
    select,
    text,
)
from sqlalchemy.engine.interfaces import Compiled
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.sql import visitors
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.util import find_tables
from sqlalchemy.util import await_

from service.storage import sqlite_driver
from service.storage.db import ServiceSession

__all__ = ["advisory_xact_lock", "defer", "dialect_of", "execute", "execute_many", "execute_now", "fetch",
           "fetch_last", "fetch_now", "in_transaction", "sqlalchemy_errors", "memo_last", "per_transaction",
           "raw_connection"]

Processor = Callable[[Any], Any]
Statement = Select[*tuple[Any, ...]] | UpdateBase  # a module constant: plans are kept per statement object
# Rows converted, or written (SQLite), between two turns of the event loop (~50 – 250 µs):
# callers share the loop (SMTP senders).
_YIELD_EVERY = 16


# An argument slot of an expanded statement: the parameter, the index in its list (None: a
# plain value), the converter; or, for a value the construct carries itself, None and that
# value (already converted).
_Slot = tuple[str | None, Any, Processor | None]


@dataclass(frozen=True, slots=True)
class _Plan:
    """A statement compiled for one dialect, with the converters of its parameters and columns."""

    statement: Statement  # kept alive: plans are looked up by its id()
    compiled: SQLCompiler
    binds: Mapping[str, Processor]
    defaults: Mapping[str, Any]  # values the construct carries itself (literals, constants)
    columns: tuple[tuple[int, Processor], ...]  # result columns that need converting, by position
    expanding: bool  # has ``IN`` lists: the SQL is rewritten for each call's list lengths
    converters: tuple[tuple[int, Processor], ...]  # positional parameters that need converting
    writes: bool  # changes or locks rows: runs inside the transaction, after the held writes
    tables: frozenset[str]  # every table it names
    # With ``IN`` lists: the expanded SQL and its argument slots, by the lists' lengths.
    expansions: dict[tuple[tuple[str, int], ...], tuple[str, tuple[_Slot, ...]]] = field(default_factory=dict)


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
        expanding = any(bind.expanding for bind in compiled.binds.values())
        converters = tuple((at, binds[n]) for at, n in enumerate(compiled.positiontup) if n in binds)
        plan = _plans[key] = _Plan(statement, compiled, binds, defaults, columns, expanding, converters,
                                   _writes(statement), _tables(statement))
    return plan


def _writes(statement: Any) -> bool:
    """Changes or locks rows: a DML statement, or one with a DML or FOR UPDATE part anywhere
    (a common table expression, a subquery). A SELECT of a function with side effects is
    not seen: such a statement goes through ``execute``."""
    return any(isinstance(e, UpdateBase) or getattr(e, "_for_update_arg", None) is not None
               for e in visitors.iterate(statement))


def _tables(statement: Any) -> frozenset[str]:
    return frozenset(t.name for t in find_tables(statement, include_aliases=True, include_crud=True,
                                                 include_joins=True) if hasattr(t, "name"))


class _Driver(Protocol):
    """One statement call on a driver connection: rows, or one call for many parameter rows."""

    async def rows(self, sql: str, args: Sequence[Any], begin: bool = True) -> Sequence[Sequence[Any]]: ...

    async def many(self, sql: str, args: list[list[Any]]) -> None: ...


class _SQLite:
    def __init__(self, conn: sqlite_driver.LoopConnection) -> None:
        self._conn = conn

    async def rows(self, sql: str, args: Sequence[Any], begin: bool = True) -> Sequence[Sequence[Any]]:
        async with self._conn.cursor() as cursor:  # runs on the loop, in one step
            with sqlalchemy_errors():
                await cursor.execute(sql, args)
            return await cursor.fetchall()

    async def many(self, sql: str, args: list[list[Any]]) -> None:
        # In slices with a turn of the loop between: 50 rows in one go hold the loop for
        # 0.5 – 1 ms, and the replies of every SMTP connection wait that long (see _YIELD_EVERY).
        async with self._conn.cursor() as cursor:
            for start in range(0, len(args), _YIELD_EVERY):
                if start:
                    await asyncio.sleep(0)
                with sqlalchemy_errors():
                    await cursor.executemany(sql, args[start : start + _YIELD_EVERY])


class _Asyncpg:
    def __init__(self, adapted: Any) -> None:
        self._adapted = adapted  # SQLAlchemy's adapter: it owns the transaction

    async def begun(self) -> Any:
        """The asyncpg connection, in the adapter's transaction (the adapter begins it on its
        first statement; ours may come first)."""
        if self._adapted._transaction is None:
            await self._adapted._start_transaction()
        return self._adapted._connection

    async def rows(self, sql: str, args: Sequence[Any], begin: bool = True) -> Sequence[Sequence[Any]]:
        # Not begun for a read, or for a last statement that nothing wrote before: alone,
        # a statement is its own transaction (SQLAlchemy sends no COMMIT for one not begun).
        conn = await self.begun() if begin else self._adapted._connection
        with sqlalchemy_errors():
            return list(await conn.fetch(sql, *args))

    async def many(self, sql: str, args: list[list[Any]]) -> None:
        conn = await self.begun()
        with sqlalchemy_errors():
            if len(args) == 1:  # executemany's batch costs 15 – 20 µs more for a single row
                await conn.execute(sql, *args[0])
            else:
                await conn.executemany(sql, args)


def _driver(conn: Connection) -> _Driver | None:
    """What runs statements under ``conn`` directly, or None: SQLAlchemy runs them."""
    fairy = conn.connection
    if isinstance(fairy.driver_connection, sqlite_driver.LoopConnection):
        return _SQLite(fairy.driver_connection)
    if conn.dialect.driver == "asyncpg":
        return _Asyncpg(fairy.dbapi_connection)
    return None


_CURRENT = "docexchange.driver"  # session.info key: the connection of the current transaction


async def _connection(session: AsyncSession) -> tuple[AsyncConnection, _Driver | None]:
    """The session's connection (its transaction begun) and its driver, found once per transaction."""
    transaction = session.sync_session.get_transaction()
    current = session.info.get(_CURRENT)
    if current is not None and transaction is not None and current[0] is transaction and transaction.is_active:
        return current[1], current[2]
    conn = await session.connection()
    if conn.sync_connection is None:
        raise RuntimeError("the database connection is closed")
    driver = _driver(conn.sync_connection)
    session.info[_CURRENT] = (session.sync_session.get_transaction(), conn, driver)
    return conn, driver


async def raw_connection(session: AsyncSession) -> Any:
    """The driver's connection of the session, its transaction begun and the held writes
    sent: for what goes to the driver outside these functions (COPY)."""
    conn, driver = await _connection(session)
    await _send_held(session, None)
    if isinstance(driver, _Asyncpg):
        return await driver.begun()
    raw = (await conn.get_raw_connection()).driver_connection
    if raw is None:
        raise RuntimeError("the database connection is closed")
    return raw


_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


async def advisory_xact_lock(session: AsyncSession, key: int) -> None:
    """Wait for, then hold until the transaction ends, PostgreSQL's advisory lock ``key``
    (a signed 64-bit number), across processes. Nothing on SQLite: one writer at a time."""
    if dialect_of(session) == "postgresql":
        await session.execute(_ADVISORY_LOCK, {"key": key})


def dialect_of(session: AsyncSession) -> str:
    """The session's database: "sqlite", "postgresql", …"""
    return session.bind.dialect.name if session.bind is not None else ""


async def fetch(session: AsyncSession, statement: Statement, params: Mapping[str, Any]) -> list[Sequence[Any]]:
    """Execute a statement that returns rows (SELECT, or DML … RETURNING); rows of converted values.

    ``expanding`` parameters (``IN`` lists) are allowed here.
    """
    conn, driver = await _connection(session)
    if driver is None:
        return list(await conn.execute(statement, dict(params)))
    plan = _plan(statement, conn.dialect)
    await _send_held(session, plan)
    sql, args = _bound(plan, params)
    rows = await driver.rows(sql, args, begin=plan.writes)
    out: list[Sequence[Any]] = []
    for n, row in enumerate(rows, 1):
        out.append(_converted(row, plan.columns))
        if n % _YIELD_EVERY == 0:
            await asyncio.sleep(0)
    return out


async def execute_many(session: AsyncSession, statement: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
    """Execute a statement once per row of parameters (INSERT, UPDATE), in one trip.

    Each row names every parameter the construct does not carry itself. Values repeated
    across rows (the same moment, the same owner) are converted once.
    """
    if not rows:
        return
    conn, driver = await _connection(session)
    if driver is None:
        await conn.execute(statement, [dict(r) for r in rows])
        return
    plan = _plan(statement, conn.dialect)
    await _send_held(session, plan)
    names = plan.compiled.positiontup or []
    convert = [(at, memo_last(f)) for at, f in plan.converters]
    args = []
    for count, row in enumerate(rows, 1):
        values = [row[n] if n in row else plan.defaults[n] for n in names]
        for at, f in convert:
            values[at] = f(values[at])
        args.append(values)
        if count % _YIELD_EVERY == 0:
            await asyncio.sleep(0)
    await driver.many(plan.compiled.string, args)


async def execute(session: AsyncSession, statement: Statement, params: Mapping[str, Any]) -> None:
    """Execute a statement once (INSERT, UPDATE, DELETE): ``execute_many`` of one row."""
    await execute_many(session, statement, [params])


def fetch_now(conn: Connection, statement: Statement, params: Mapping[str, Any], *,
              last: bool = False) -> list[Sequence[Any]]:
    """``fetch`` on a synchronous Connection (inside a session event); ``last``: the
    transaction's last statement, run alone if the transaction has not begun."""
    driver = _driver(conn)
    if driver is None:
        return list(conn.execute(statement, dict(params)))
    plan = _plan(statement, conn.dialect)
    rows = await_(driver.rows(*_bound(plan, params), begin=plan.writes and not last))
    return [_converted(row, plan.columns) for row in rows]


def execute_now(conn: Connection, statement: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
    """``execute_many`` on a synchronous Connection (inside a session event)."""
    driver = _driver(conn)
    if driver is None:
        conn.execute(statement, [dict(r) for r in rows])
        return
    plan = _plan(statement, conn.dialect)
    await_(driver.many(plan.compiled.string, [_values(plan, row) for row in rows]))


# -- Writes held for the transaction's last statement (PostgreSQL) ---------------------

_HELD_WRITES = "docexchange.held"  # session.info: the writes ``defer`` holds, in order
# At most this many parameters go out in one last statement (a send to about a dozen
# units; each distinct shape is a prepared statement and a plan of its own): more, and
# the held writes are sent before it, each in one trip.
_LAST_PARAMS = 400


@dataclass(frozen=True, slots=True)
class _Held:
    statement: UpdateBase
    rows: list[Mapping[str, Any]]
    tables: frozenset[str]


async def defer(session: AsyncSession, statement: UpdateBase, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write ``rows`` with ``statement`` (INSERT, UPDATE) as part of the transaction's last statement.

    On PostgreSQL (asyncpg) the writes are held until the statement that closes the
    transaction (``fetch_last``) or until a statement needs them first: one that writes,
    or that reads a table they write. Elsewhere they are written at once (SQLite
    statements cost no trip). Either way a constraint they break may be raised only at
    commit: a caller that must know at once uses ``execute_many``. Each row names every
    column of an INSERT's table. Held writes sent together see the same snapshot: one must
    not depend on another's effect (an UPDATE of a row a held INSERT creates).
    """
    if not rows:
        return
    bind = session.bind
    if bind is None or bind.dialect.driver != "asyncpg":  # statements go out one by one anyway
        await execute_many(session, statement, rows)
        return
    held: list[_Held] = in_transaction(session).info.setdefault(_HELD_WRITES, [])
    held.append(_Held(statement, list(rows), _plan(statement, bind.dialect).tables))


_PER_TRANSACTION = {_HELD_WRITES}  # session.info keys dropped when the root transaction ends


def per_transaction(key: str) -> str:
    """Name a session.info ``key`` whose value belongs to the current transaction: it is
    dropped when the root transaction ends (rollback, close; a commit's listeners take it
    first). Returns ``key``."""
    _PER_TRANSACTION.add(key)
    return key


def in_transaction(session: AsyncSession) -> Session:
    """The session's synchronous side, its transaction begun (not yet on the database).

    What is kept for the transaction under a ``per_transaction`` key is dropped when the
    root transaction ends; beginning it here makes that end an event even if nothing was
    sent yet."""
    sync = session.sync_session
    if sync.get_transaction() is None:
        sync.begin()
    return sync


def _wanted(held: list[_Held], writes: bool, tables: frozenset[str]) -> bool:
    return writes or any(h.tables & tables for h in held)


async def _send_held(session: AsyncSession, plan: _Plan | None) -> None:
    """The held writes, sent first when the coming statement (None: anything) needs them."""
    info = session.sync_session.info
    held = info.get(_HELD_WRITES)
    if held and (plan is None or _wanted(held, plan.writes, plan.tables)):
        del info[_HELD_WRITES]
        for h in held:
            await execute_many(session, h.statement, h.rows)


def _send_held_now(session: Session) -> None:
    held: list[_Held] | None = session.info.pop(_HELD_WRITES, None)
    if held:
        conn = session.connection()
        for h in held:
            execute_now(conn, h.statement, h.rows)


LastStatement = Callable[[ColumnElement[bool] | None], Statement]


def fetch_last(session: Session, make: LastStatement, key: Hashable, params: Mapping[str, Any]) -> list[Sequence[Any]]:
    """Run the transaction's last statement (from ``before_commit``) with the held writes.

    ``make(gate)`` builds that statement (``key`` names it among the statements ``make``
    builds); ``gate`` is None, or a condition the statement evaluates before it takes a
    lock: the held writes, each a common table expression of the statement, finish when it
    is evaluated. So the whole commit is one trip, and the statement's own locks are the
    transaction's last. If the transaction has not begun (nothing wrote before), it is not
    begun for this one statement, which is atomic on its own. Rows of the statement.
    """
    held: list[_Held] = session.info.get(_HELD_WRITES, [])
    conn = session.connection()
    found = None
    if held and _driver(conn) is not None and sum(len(h.rows) * len(h.rows[0]) for h in held) <= _LAST_PARAMS:
        found = _composed(make, key, held)
    if found is None:
        _send_held_now(session)
        return fetch_now(conn, make(None), params, last=True)
    del session.info[_HELD_WRITES]
    composed, names = found
    values = dict(params)
    for h, prefixes in zip(held, names, strict=True):
        for row, prefix in zip(h.rows, prefixes, strict=True):
            values.update({prefix + k: v for k, v in row.items()})
    return fetch_now(conn, composed, values, last=True)


# A composed statement per shape (the last statement; each held statement, its row count
# and columns), kept with its plan for the life of the process. A send's shape varies with
# its recipients (a shape of a few rows holds about 50 – 100 kB); past ``_COMPOSED_MAX``
# shapes, new ones are not composed: their held writes go out before the last statement.
_COMPOSED: dict[tuple[Any, ...], tuple[Statement, list[list[str]]]] = {}
_COMPOSED_MAX = 32


def _composed(make: LastStatement, key: Hashable, held: list[_Held]) -> tuple[Statement, list[list[str]]] | None:
    """The last statement with each held write as a common table expression, and per held
    write the prefix of each row's parameters; None once ``_COMPOSED_MAX`` shapes were made."""
    shape = (key, *((id(h.statement), len(h.rows), tuple(h.rows[0])) for h in held))
    found = _COMPOSED.get(shape)
    if found is None:
        if len(_COMPOSED) >= _COMPOSED_MAX:
            return None
        ctes, names = [], []
        for at, h in enumerate(held):
            prefixes = [f"w{at}_{n}_" for n in range(len(h.rows))]
            names.append(prefixes)
            if isinstance(h.statement, Insert) and not h.statement._values and not h.statement._multi_values:
                table = h.statement.table
                columns = list(h.rows[0])
                if len(columns) != len(table.c):
                    raise ValueError(f"a held INSERT into {table.name} names every column")
                many = insert(table).values([{c: bindparam(p + c, type_=table.c[c].type) for c in columns}
                                             for p in prefixes])
                ctes.append(many.returning(literal_column("1")).cte(f"w{at}"))
            else:
                ctes.extend(_renamed(h.statement, p).returning(literal_column("1")).cte(f"w{at}_{n}")
                            for n, p in enumerate(prefixes))
        # Counting a write's RETURNING rows runs it to its end.
        gate = and_(*(select(func.count()).select_from(cte).scalar_subquery() >= 0 for cte in ctes))
        found = _COMPOSED[shape] = (make(gate).add_cte(*ctes), names)
    return found


def _renamed(statement: UpdateBase, prefix: str) -> UpdateBase:
    """A copy of ``statement`` whose parameters are named ``prefix`` + their name."""
    made: dict[str, BindParameter[Any]] = {}

    def rename(element: Any) -> Any:
        if isinstance(element, BindParameter):
            if element.key not in made:
                made[element.key] = bindparam(prefix + element.key, type_=element.type, required=element.required,
                                              value=None if element.required else element.value)
            return made[element.key]
        return None

    renamed: UpdateBase = visitors.replacement_traverse(statement, {}, rename)  # type: ignore[call-overload]
    return renamed


@event.listens_for(ServiceSession, "do_orm_execute")
def _before_orm_statement(state: ORMExecuteState) -> None:
    held: list[_Held] | None = state.session.info.get(_HELD_WRITES)
    if held and _wanted(held, not state.is_select or _writes(state.statement), _tables(state.statement)):
        _send_held_now(state.session)


@event.listens_for(ServiceSession, "before_flush")
def _before_orm_flush(session: Session, _context: Any, _instances: Any) -> None:
    _send_held_now(session)


@event.listens_for(ServiceSession, "before_commit")
def _before_commit(session: Session) -> None:
    # After the audit chain's listener (inserted first), which sends them with its statement.
    _send_held_now(session)


@event.listens_for(ServiceSession, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    # The root transaction only (rolled back, closed; a commit took them already): a
    # savepoint's end leaves what the transaction around it keeps.
    if transaction.parent is None:
        for key in _PER_TRANSACTION:
            session.info.pop(key, None)


# An ``IN`` list's SQL depends only on the list's length: the expanded SQL and where each
# argument comes from are kept on the plan per lengths (SQLAlchemy rebuilds them on every call).
_EXPANSIONS_MAX = 256


def _bound(plan: _Plan, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """The SQL (``IN`` lists expanded) and its positional, converted arguments."""
    if not plan.expanding:
        return plan.compiled.string, _values(plan, params)
    lengths = tuple(sorted((k, len(v)) for k, v in params.items() if isinstance(v, list | tuple)))
    cached = plan.expansions.get(lengths)
    if cached is None:
        cached = _expand(plan, params)
        if len(plan.expansions) >= _EXPANSIONS_MAX:
            plan.expansions.clear()
        plan.expansions[lengths] = cached
    sql, slots = cached
    return sql, [at if name is None else _convert(f, params[name] if at is None else params[name][at])
                 for name, at, f in slots]


def _expand(plan: _Plan, params: Mapping[str, Any]) -> tuple[str, tuple[_Slot, ...]]:
    state = plan.compiled.construct_expanded_state(dict(params))
    processors = {**plan.binds, **state.processors}
    origin = {expanded: (name, at) for name, names in state.parameter_expansion.items()
              for at, expanded in enumerate(names)}
    slots: list[_Slot] = []
    for name, value in zip(state.positiontup or (), state.positional_parameters, strict=True):
        source, at = origin.get(name, (name, None))
        if source in params:
            slots.append((source, at, processors.get(name)))
        else:  # a value the construct carries itself
            slots.append((None, _convert(processors.get(name), value), None))
    return state.statement, tuple(slots)


def _values(plan: _Plan, row: Mapping[str, Any]) -> list[Any]:
    """The positional arguments of one row; what it does not name, the construct carries."""
    values = [row[n] if n in row else plan.defaults[n] for n in plan.compiled.positiontup or ()]
    for at, convert in plan.converters:
        values[at] = convert(values[at])
    return values


def _converted(row: Sequence[Any], columns: tuple[tuple[int, Processor], ...]) -> list[Any]:
    values = list(row)
    for at, convert in columns:
        values[at] = convert(values[at])
    return values


@contextmanager
def sqlalchemy_errors() -> Iterator[None]:
    """The driver's errors as ``session.execute`` raises them: a constraint violation as
    IntegrityError; data the database cannot take (PostgreSQL refusing a NUL, text that
    cannot be encoded) as DataError."""
    try:
        yield
    except Exception as exc:
        if _is_integrity_error(exc):
            raise IntegrityError("statement sent to the driver", None, exc) from exc
        if isinstance(exc, UnicodeEncodeError) or _named_in_mro(exc, "DataError"):
            raise DataError("statement sent to the driver", None, exc) from exc
        raise


def _named_in_mro(exc: BaseException, name: str) -> bool:
    # asyncpg's classes by name: this module does not import the driver it may not need.
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def _is_integrity_error(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.IntegrityError):
        return True
    # asyncpg's constraint violations (unique, foreign key, not null) share this base.
    return _named_in_mro(exc, "IntegrityConstraintViolationError")


def _convert(processor: Processor | None, value: Any) -> Any:
    return value if processor is None else processor(value)


def memo_last(convert: Processor) -> Processor:
    """``convert`` remembering its last value (compared by identity, and held): rows written
    together repeat the same moment, owner or payload object one after the other."""
    last: list[Any] = [object(), None]

    def run(value: Any) -> Any:
        if value is not last[0]:
            last[0], last[1] = value, convert(value)
        return last[1]

    return run
