"""Writes held for a transaction's last statement (``driver.defer``): on PostgreSQL they go
out with the audit chain's statement; everywhere they are part of the transaction — seen by
its later reads, committed with it, kept by none of it if one of them breaks a constraint."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from service import audit
from service.storage import driver
from service.storage.db import Database
from service.storage.rows import insert_into
from service.storage.types import new_id
from service.units import Unit

pytestmark = pytest.mark.asyncio

_UNITS = insert_into(Unit.__table__)  # type: ignore[attr-defined]


def _row(code: str) -> dict[str, object]:
    uid = new_id()
    unit = Unit(id=uid, code=code, name="Chi bộ Ấp Bình Minh", level="Chi bộ", path=f"/{uid}/", mailboxes=[])
    return {c.name: getattr(unit, c.key) for c in Unit.__table__.columns}  # type: ignore[attr-defined]


async def _codes(db: Database) -> list[str]:
    async with db.session() as s:
        return sorted((await s.execute(select(Unit.code))).scalars())


async def _chained_entries(db: Database) -> int:
    """The entries of an intact chain (fails if it is broken)."""
    async with db.session() as s:
        report = await audit.verify_chain(s)
    assert report.ok, report.reason
    return report.entries


async def test_held_rows_commit_with_the_audit_entries(db_url: str) -> None:
    db = Database(db_url, pool_size=2)
    try:
        async with db.session() as s:
            assert await driver.fetch(s, select(Unit.code).where(Unit.code == "A"), {}) == []  # a read first
            await driver.defer(s, _UNITS, [_row("A"), _row("B")])
            await audit.append(s, action="test.held", data={"codes": ["A", "B"]})
            await s.commit()
        assert await _codes(db) == ["A", "B"]
        assert await _chained_entries(db) == 1
    finally:
        await db.dispose()


async def _hold_and_commit(s: AsyncSession, rows: list[dict[str, object]]) -> None:
    await driver.defer(s, _UNITS, rows)
    await audit.append(s, action="test.never")
    await s.commit()


@pytest.mark.parametrize("write_first", [False, True], ids=["held-only", "after-a-write"])
async def test_a_held_row_that_breaks_a_constraint_fails_the_commit_and_nothing_is_kept(
        db_url: str, write_first: bool) -> None:
    db = Database(db_url, pool_size=2)
    try:
        async with db.session() as s:
            await driver.execute_many(s, _UNITS, [_row("TAKEN")])
            await audit.append(s, action="test.first")
            await s.commit()
        async with db.session() as s:
            if write_first:
                await driver.execute_many(s, _UNITS, [_row("EARLIER")])
            with pytest.raises(IntegrityError):  # SQLite refuses it at once, PostgreSQL at commit
                await _hold_and_commit(s, [_row("NEW"), _row("TAKEN")])
            await s.rollback()
        assert await _codes(db) == ["TAKEN"]
        assert await _chained_entries(db) == 1
    finally:
        await db.dispose()


async def test_a_read_of_a_held_table_sees_the_held_rows_and_a_rollback_drops_them(db_url: str) -> None:
    db = Database(db_url, pool_size=2)
    try:
        async with db.session() as s:
            await driver.defer(s, _UNITS, [_row("HELD")])
            assert [r[0] for r in await driver.fetch(s, select(Unit.code), {})] == ["HELD"]
            assert (await s.execute(select(func.count()).select_from(Unit))).scalar_one() == 1
            await s.rollback()
        async with db.session() as s:
            await driver.defer(s, _UNITS, [_row("DROPPED")])
            await s.rollback()
            await driver.defer(s, _UNITS, [_row("KEPT")])
            await s.commit()  # no audit entry: the held rows still go out
        assert await _codes(db) == ["KEPT"]
    finally:
        await db.dispose()


async def test_a_held_write_that_waits_for_a_row_does_not_hold_the_audit_head(db_url: str) -> None:
    """A writes a row early and chains its entry at commit; B holds a write of the same row.
    B's last statement must wait for A's row before it takes the chain's head: the other way
    round each waits for the other (PostgreSQL aborts one as a deadlock)."""
    import asyncio

    db = Database(db_url, pool_size=2)
    outcome: dict[str, str] = {}

    async def early_writer() -> None:
        async with db.session() as s:
            await driver.execute_many(s, _UNITS, [_row("SAME")])
            await audit.append(s, action="test.early")
            await asyncio.sleep(0.4)  # the other one's commit starts meanwhile
            await s.commit()
            outcome["early"] = "committed"

    async def holder() -> None:
        await asyncio.sleep(0.1)
        async with db.session() as s:
            try:
                await _hold_and_commit(s, [_row("SAME")])
                outcome["held"] = "committed"
            except IntegrityError:
                outcome["held"] = "refused"
                await s.rollback()

    try:
        await asyncio.wait_for(asyncio.gather(early_writer(), holder()), 30)
        assert outcome == {"early": "committed", "held": "refused"}
        assert await _codes(db) == ["SAME"]
        assert await _chained_entries(db) == 1
    finally:
        await db.dispose()
