"""Rows sent straight to the driver (SQLite on the loop, asyncpg) obey the same constraints and
the same transaction, and a violation is reported the way SQLAlchemy reports it."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from service.storage.db import Database
from service.storage.rows import insert_rows
from service.storage.types import new_id
from service.units import Unit

pytestmark = pytest.mark.asyncio


def _unit(code: str) -> Unit:
    uid = new_id()
    return Unit(id=uid, code=code, name="Đảng ủy xã Tân Phú", level="Đảng ủy xã", path=f"/{uid}/", mailboxes=[])


async def test_a_second_unit_with_the_same_code_is_an_integrity_error_and_nothing_is_kept(db_url: str) -> None:
    db = Database(db_url, pool_size=2)
    try:
        async with db.session() as s:
            await insert_rows(s, [_unit("000.01.02.H99")])
            with pytest.raises(IntegrityError):
                await insert_rows(s, [_unit("000.01.02.H99")])
            await s.rollback()
        async with db.session() as s:
            assert await s.scalar(select(func.count()).select_from(Unit)) == 0
            await insert_rows(s, [_unit("000.01.02.H99")])
            await s.commit()
        async with db.session() as s:
            assert (await s.execute(select(Unit.code))).scalars().all() == ["000.01.02.H99"]
    finally:
        await db.dispose()
