"""The schema the migrations build is the one the models describe: a column added to a
model without its migration would fail on every deployed database, not in tests that
create tables from the models."""

from __future__ import annotations

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
