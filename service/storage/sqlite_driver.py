"""aiosqlite connections that leave the event loop only for what can wait.

aiosqlite runs every call on its connection's thread and hands the result back to the
event loop; SQLAlchemy's adapter makes four such calls per statement (open a cursor,
execute, fetch all rows, close). Each trip costs a thread wake-up, a future, a turn of
the loop and, while the loop is busy with other requests, a wait for the GIL, which
together cost far more than the statement itself.

Only two things in SQLite can wait on another process: taking the write lock (every
transaction here starts with ``BEGIN IMMEDIATE``, see ``db.py``) and changing the
journal mode. ``begin_immediate`` (called by ``db.py`` for every transaction) tries on
the loop without waiting and, if another process holds the lock, waits on the thread;
PRAGMAs always go to the thread.
Inside a transaction that holds the write lock, in WAL mode, nothing waits:
statements, COMMIT and ROLLBACK run on the loop directly, and a cursor answers the
fetches from the rows it read with the statement. The one exception is the COMMIT of
a large transaction (a mail batch, a send to hundreds of units): writing its pages to
the WAL takes milliseconds that need no Python, so it goes to the thread and the loop
serves others meanwhile.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Iterable, Sequence
from threading import Thread
from typing import Any

import aiosqlite

__all__ = ["LoopConnection", "connect"]

_Outcome = tuple[list[Any], Any, int, int | None]


def _run(conn: sqlite3.Connection, sql: str, parameters: Any, many: bool) -> _Outcome:
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return rows, cursor.description, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _without_waiting(conn: sqlite3.Connection, busy_timeout_ms: int, sql: str, parameters: Any) -> _Outcome | None:
    """``sql`` run at once, or None when another process holds the lock it needs."""
    conn.execute("PRAGMA busy_timeout=0")
    try:
        return _run(conn, sql, parameters, False)
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return None
        raise
    finally:
        conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")


class _Cursor:
    """What SQLAlchemy's adapter uses of an aiosqlite cursor, fetched up front."""

    def __init__(self, conn: LoopConnection) -> None:
        self._conn = conn
        self._rows: list[Any] = []
        self._description: Any = None
        self._rowcount: int = -1
        self._lastrowid: int | None = None

    def __await__(self) -> Generator[Any, None, _Cursor]:
        return self._itself().__await__()

    async def _itself(self) -> _Cursor:
        return self

    async def __aenter__(self) -> _Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._rows = []

    async def _go(self, sql: str, parameters: Any, many: bool) -> _Cursor:
        conn = self._conn._conn
        if sql.lstrip()[:6].upper() == "PRAGMA":  # it may wait: on the connection's thread
            outcome = await self._conn._execute(  # type: ignore[no-untyped-call]
                _run, conn, sql, parameters, many)
        else:
            outcome = _run(conn, sql, parameters, many)
        self._rows, self._description, self._rowcount, self._lastrowid = outcome
        return self

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> _Cursor:
        return await self._go(sql, () if parameters is None else parameters, False)

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> _Cursor:
        return await self._go(sql, parameters, True)

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        size = size or 1
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    async def fetchall(self) -> Sequence[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def close(self) -> None:
        self._rows = []

    async def nextset(self) -> None:
        self._rows, self._description = [], None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._lastrowid


# Rows changed by a transaction from which its COMMIT runs on the thread: a mail batch
# of 50 changes ~200 and its COMMIT takes ~1.5 ms; an upload changes ~5 (~0.1 ms, less
# than the trip to the thread).
_COMMIT_ON_THREAD_ROWS = 64


class LoopConnection(aiosqlite.Connection):
    busy_timeout_ms = 30_000
    _changes_at_begin = 0

    async def begin_immediate(self) -> None:
        """``BEGIN IMMEDIATE``: on the loop when the lock is free, else waiting on the thread."""
        sql = "BEGIN IMMEDIATE"
        if _without_waiting(self._conn, self.busy_timeout_ms, sql, ()) is None:
            await self._execute(_run, self._conn, sql, (), False)  # type: ignore[no-untyped-call]
        self._changes_at_begin = self._conn.total_changes

    async def commit(self) -> None:
        if self._conn.total_changes - self._changes_at_begin >= _COMMIT_ON_THREAD_ROWS:
            await self._execute(self._conn.commit)  # type: ignore[no-untyped-call]
        else:
            self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    def cursor(self) -> _Cursor:  # type: ignore[override]
        # aiosqlite's cursor() is awaited or entered (``async with``); this one is both,
        # and needs no trip: the sqlite3 cursor lives only inside each statement's trip.
        return _Cursor(self)


async def connect(path: str, timeout: float) -> aiosqlite.Connection:
    """An open connection to the SQLite file at ``path`` (for ``async_creator``)."""
    # Opened on the thread, used from the loop too: one user at a time (the pool's
    # checkout), never both at once (the loop awaits every trip it hands over).
    conn = LoopConnection(lambda: sqlite3.connect(path, timeout=timeout, check_same_thread=False), 64)
    conn.busy_timeout_ms = int(timeout * 1000)
    # The thread must not keep a finished process alive (aiosqlite < 0.22: the connection is the thread).
    thread = conn if isinstance(conn, Thread) else conn._thread
    thread.daemon = True
    return await conn
