"""The worker's driver path stores and reads values exactly as SQLAlchemy does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, insert, select, text

from service.mail import MailAttempt
from service.storage.db import Database
from service.storage.driver import execute_many, fetch

from .conftest import add_document, add_events, add_unit

pytestmark = pytest.mark.asyncio

_AT = MailAttempt.__table__  # type: ignore[attr-defined]
_INSERT = insert(_AT)
_BY_ID = select(_AT.c.id, _AT.c.at, _AT.c.code, _AT.c.reply).where(_AT.c.id.in_(bindparam("ids", expanding=True)))


async def test_an_attempt_written_by_the_driver_reads_back_as_one_written_by_the_orm(db: Database) -> None:
    sender = await add_unit(db, "Tỉnh ủy", ["tu@so.vn"])
    unit = await add_unit(db, "Chi bộ", ["cb@so.vn"])
    [event] = await add_events(db, await add_document(db, sender), [unit])
    # A Vietnam-time moment with microseconds: stored as naive UTC by both paths.
    at = datetime(2026, 11, 22, 13, 5, 7, 123456, tzinfo=timezone(timedelta(hours=7)))
    values = {"event_id": event.id, "address": "cb@so.vn", "at": at, "stage": "DATA", "code": 250,
              "reply": "2.0.0 Ok: queued", "worker": "w1"}
    async with db.session() as s:
        s.add(MailAttempt(id="a" * 32, **values))
        await s.commit()
    async with db.session() as s:
        await execute_many(s, _INSERT, [{"id": "b" * 32, **values}])
        await s.commit()

    async with db.session() as s:
        stored = (await s.execute(text("SELECT id, at, code, reply FROM mail_attempt ORDER BY id"))).all()
        read = await fetch(s, _BY_ID, {"ids": ["a" * 32, "b" * 32]})
    assert [tuple(r[1:]) for r in stored] == [("2026-11-22 06:05:07.123456", 250, "2.0.0 Ok: queued")] * 2
    assert sorted(tuple(r) for r in read) == [
        (i * 32, datetime(2026, 11, 22, 6, 5, 7, 123456, tzinfo=UTC), 250, "2.0.0 Ok: queued") for i in "ab"
    ]
