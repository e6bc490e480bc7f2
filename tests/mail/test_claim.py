"""The claim: urgent first, then the longest due; never what is sent, failed, not yet due
or leased by a live worker; read from the queue index, not by sorting the backlog."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.dialects import sqlite

from service.mail import repository as repo
from service.outbox.models import OutboxEvent
from service.storage.db import Database
from service.storage.types import utcnow

from .conftest import add_document, add_events, add_unit

pytestmark = pytest.mark.asyncio


async def _backlog(db: Database) -> dict[str, list[str]]:
    """Events in every state a queue holds; returns their ids by role."""
    sender = await add_unit(db, "Tỉnh ủy", ["tu@so.vn"])
    unit = await add_unit(db, "Chi bộ", ["cb@so.vn"])
    doc = await add_document(db, sender)
    events = await add_events(db, doc, [unit] * 60)
    urgent = await add_events(db, doc, [unit] * 3, priority=3)
    now = utcnow()
    roles = {"normal": [e.id for e in events[:40]], "urgent": [e.id for e in urgent],
             "later": [e.id for e in events[40:45]], "sent": [e.id for e in events[45:50]],
             "failed": [e.id for e in events[50:54]], "dead_lease": [e.id for e in events[54:57]],
             "live_lease": [e.id for e in events[57:60]]}
    ev = OutboxEvent.__table__  # type: ignore[attr-defined]
    async with db.session() as s:
        for n, eid in enumerate(roles["normal"]):  # due for n minutes less the later in the list
            await s.execute(update(ev).where(ev.c.id == eid).values(next_attempt_at=now - timedelta(minutes=100 - n)))
        changes = {"later": {"state": "deferred", "next_attempt_at": now + timedelta(hours=1)},
                   "sent": {"state": "sent"}, "failed": {"state": "failed"},
                   "dead_lease": {"state": "sending", "lease_owner": "gone", "lease_until": now - timedelta(minutes=1),
                                  "next_attempt_at": now - timedelta(minutes=50)},
                   "live_lease": {"state": "sending", "lease_owner": "alive", "lease_until": now + timedelta(minutes=5),
                                  "next_attempt_at": now - timedelta(hours=5)}}
        for role, values in changes.items():
            await s.execute(update(ev).where(ev.c.id.in_(roles[role])).values(**values))
        await s.commit()
    return roles


async def _claim(db: Database, limit: int) -> list[str]:
    async with db.session() as s:
        claimed = await repo.claim_due(s, owner="w1", now=utcnow(), lease_s=60, limit=limit)
        await s.commit()
    return [e.id for e in claimed]


async def _claims_in_order(db: Database) -> None:
    roles = await _backlog(db)
    first = await _claim(db, 20)
    # Urgent first; then by time due: the normal events (due 100 to 61 minutes ago), then
    # those whose worker died (due 50 minutes ago); never the live lease's (due 5 hours ago).
    # (Events due at the same moment may come in any order among themselves.)
    assert set(first[:3]) == set(roles["urgent"])
    assert first[3:] == roles["normal"][:17]
    rest = await _claim(db, 100)
    assert rest[:23] == roles["normal"][17:]
    assert set(rest[23:]) == set(roles["dead_lease"])
    assert await _claim(db, 100) == []


async def test_the_claim_takes_urgent_first_then_the_longest_due_on_sqlite(db: Database) -> None:
    await _claims_in_order(db)


async def test_the_claim_takes_urgent_first_then_the_longest_due_on_postgresql(pg_db: Database) -> None:
    await _claims_in_order(pg_db)


async def test_the_claim_reads_the_queue_index_in_order_instead_of_sorting_the_backlog(db: Database) -> None:
    # SQLite uses a partial index only when the query names its predicate word for word.
    sql = repo._CLAIM.compile(dialect=sqlite.dialect()).string.replace("(__[POSTCOMPILE_state_1])", "(?, ?)")
    path = db.url.removeprefix("sqlite+aiosqlite:///")
    conn = sqlite3.connect(path)
    try:
        plan = " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, [None] * sql.count("?")))
    finally:
        conn.close()
    assert "USING INDEX ix_outbox_queue" in plan, plan
    assert "TEMP B-TREE" not in plan, plan
