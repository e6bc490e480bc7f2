"""The database engine: SQLite (embedded default) or PostgreSQL, both async."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.util import await_

from service.errors import ServiceError
from service.storage import sqlite_driver
from service.storage.checkpoint import SAFETY_PAGES, Checkpointer

__all__ = ["Database", "DatabaseUnavailableError", "ServiceSession", "database_problem", "existing_database",
           "is_sqlite", "shown_url"]


class DatabaseUnavailableError(ServiceError):
    """The configured database is missing, cannot be opened, or lacks the service's tables."""


class ServiceSession(Session):
    """The sync session under every AsyncSession of the service; packages hook its
    events (the audit log chains its entries in ``before_commit``)."""


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


class Database:
    """An engine plus its session factory. One per process, built by the app factory."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine: AsyncEngine = _make_engine(url, pool_size)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, sync_session_class=ServiceSession)
        self._checkpointer: Checkpointer | None = None
        path = (make_url(url).database or "") if is_sqlite(url) else ""
        if path and path != ":memory:":
            self._checkpointer = Checkpointer(path)
            self._checkpointer.start()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction the caller commits; rolled back otherwise."""
        async with self.sessions() as session:
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise

    async def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        await self.engine.dispose()


@asynccontextmanager
async def existing_database(url: str, *, pool_size: int = 2) -> AsyncIterator[Database]:
    """The database of an operator's command, which must already exist.

    Raises DatabaseUnavailableError, with what to do, for a SQLite file that is not there
    (rather than creating an empty one) and for a database that cannot be opened or lacks
    a table (not migrated, or damaged)."""
    where = shown_url(url)
    if is_sqlite(url) and not _sqlite_file_exists(url):
        raise DatabaseUnavailableError(f"there is no database at {where}: run `docexchange db upgrade` to create "
                                       "it, or set DOCEX_DATA_DIR / DOCEX_DATABASE_URL to the existing one")
    db = Database(url, pool_size=pool_size)
    try:
        yield db
    except DBAPIError as exc:  # no such table or database, cannot connect, not allowed
        raise DatabaseUnavailableError(
            f"the database {where} cannot be read ({database_problem(exc)}): check DOCEX_DATA_DIR / "
            "DOCEX_DATABASE_URL and run `docexchange db upgrade`; restore it from a backup if tables were removed"
        ) from exc
    finally:
        await db.dispose()


def shown_url(url: str) -> str:
    """``url`` to show in a message: its password hidden, and nothing of it when it is no URL."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(DOCEX_DATABASE_URL is not a database URL)"


def database_problem(exc: Exception) -> str:
    """The driver's own words for what went wrong, on one line, without the statement or its values."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def _sqlite_file_exists(url: str) -> bool:
    path = make_url(url).database or ""
    return path in ("", ":memory:") or Path(path).is_file()


def _make_engine(url: str, pool_size: int) -> AsyncEngine:
    if not is_sqlite(url):
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
        _ping_when_idle(engine)
        return engine
    # SQLite has one writer, and every transaction here starts as one (BEGIN IMMEDIATE).
    # With one connection, waiters queue in the pool and get it the moment it is free;
    # with several, they would poll SQLite's busy handler, which sleeps up to 100 ms a try.
    path = make_url(url).database or ""
    engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=60,
                                 async_creator=lambda: sqlite_driver.connect(path, timeout=30))
    _configure_sqlite(engine)
    return engine


# A pooled connection unused this long is checked before it is handed out.
IDLE_PING_S = 10.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Check a pooled connection only when it sat idle (PostgreSQL restarted, a firewall
    dropped it); ``pool_pre_ping`` would add a round trip to every checkout."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _handed_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("returned_at", 0.0) < IDLE_PING_S:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:  # the pool replaces the connection and tries again
            raise DisconnectionError("the pooled connection is gone") from exc


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us emit BEGIN ourselves (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Checkpoints run on a thread of their own (storage/checkpoint.py); this connection
        # checkpoints only if that thread falls far behind.
        cursor.execute(f"PRAGMA wal_autocheckpoint={SAFETY_PAGES}")
        # Index pages stay in memory during large inserts (a send to 10,000 units).
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Take the write lock up front: two deferred transactions that both
        # upgrade to writing would otherwise fail with "database is locked".
        driver = conn.connection.driver_connection
        if isinstance(driver, sqlite_driver.LoopConnection):
            await_(driver.begin_immediate())  # straight to the driver: this runs for every transaction
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
