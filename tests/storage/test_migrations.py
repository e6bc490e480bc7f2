"""The schema the migrations build is the one the models describe: a column added to a
model without its migration would fail on every deployed database, not in tests that
create tables from the models."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import service.storage.tables  # noqa: F401 - every table on the metadata

# Indexes on expressions (``priority DESC``) cannot be compared by reflection: the
# migration that made this one is its definition.
_EXPRESSION_INDEXES = {"ix_outbox_queue"}


def _differences(conn: Any) -> list[Any]:
    diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    return [d for d in diff if not (d[0] in ("add_index", "remove_index") and d[1].name in _EXPRESSION_INDEXES)]


async def _compare(url: str) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_differences)
    finally:
        await engine.dispose()


async def test_migrated_sqlite_matches_the_models(sqlite_template: Path) -> None:
    assert await _compare(f"sqlite+aiosqlite:///{sqlite_template}") == []


async def test_migrated_postgres_matches_the_models(pg_database: str) -> None:
    assert await _compare(pg_database) == []


def test_registrations_made_before_the_incoming_book_keep_their_numbers(tmp_path: Path) -> None:
    # 0007 keys every registered number by year (Vietnam time) and number; of two that share
    # one, the first registered keeps the key, the later keeps its number without one.
    import sqlite3

    from service.storage.migrate import upgrade

    path = tmp_path / "old.db"
    upgrade(f"sqlite+aiosqlite:///{path}", "0006")
    with sqlite3.connect(path) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(delivery)")]
        for row_id, unit, number, at in (("a", "u1", "125", "2026-03-01 10:00:00.000000"),
                                         ("b", "u1", "0125", "2026-04-01 10:00:00.000000"),
                                         ("c", "u1", "125", "2025-12-31 18:00:00.000000"),  # 1 Jan 2026, 01:00 +07
                                         ("d", "u2", "125", "2026-03-01 10:00:00.000000"),
                                         ("e", "u1", "126", "2026-03-01 10:00:00.000000"),
                                         ("f", "u1", "²", "2026-03-01 10:00:00.000000"),  # a digit int() refuses
                                         ("g", "u1", "ß" * 50, "2026-03-01 10:00:00.000000")):  # folds to 100
            values = dict.fromkeys(columns) | {
                "id": row_id, "document_id": f"doc-{row_id}", "recipient_unit_id": unit, "from_unit_id": "x",
                "hops": "[]", "status": "03", "urgency": 0, "incoming_number": number, "note": "",
                "created_at": at, "updated_at": at, "registered_at": at}
            conn.execute(f"INSERT INTO delivery ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                         [values[c] for c in columns])
    upgrade(f"sqlite+aiosqlite:///{path}")
    with sqlite3.connect(path) as conn:
        keys = dict(conn.execute("SELECT id, incoming_key FROM delivery"))
        numbers = dict(conn.execute("SELECT id, incoming_number FROM delivery"))
    def key(compared: str) -> str:
        return f"2026:{hashlib.sha256(compared.encode()).hexdigest()}"

    assert keys == {"a": None, "b": None, "c": key("125"), "d": key("125"), "e": key("126"), "f": key("²"),
                    "g": key("ss" * 50)}
    assert numbers["b"] == "0125"
