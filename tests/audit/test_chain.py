"""`docexchange audit verify` finds an altered and a deleted row."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from sqlalchemy import text

from service import audit
from service.storage.db import Database


async def _fill(db: Database, n: int) -> None:
    async with db.session() as s:
        for i in range(n):
            await audit.append(s, action="test.step", data={"i": i, "text": "Văn bản số " + str(i)})
        await s.commit()


def _cli(settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCEX_DATABASE_URL": settings.effective_database_url,
           "DOCEX_DATA_DIR": str(settings.data_dir)}
    return subprocess.run([sys.executable, "-m", "service.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


async def test_intact_chain_passes(settings, database) -> None:
    await _fill(database, 5)
    done = _cli(settings, "audit", "verify")
    assert done.returncode == 0, done.stderr
    assert "intact: 5 entries" in done.stdout


def _broken(settings, seq: int, why: str) -> None:
    """`docexchange audit verify` exits 1 naming the first broken entry and why."""
    done = _cli(settings, "audit", "verify")
    assert done.returncode == 1
    assert f"BROKEN at entry #{seq}" in done.stdout
    assert why in done.stdout


async def test_altered_row_is_reported(settings, database) -> None:
    await _fill(database, 5)
    async with database.session() as s:
        await s.execute(text("UPDATE audit_entry SET data = :d WHERE seq = 3"), {"d": '{"i": 99}'})
        await s.commit()
    _broken(settings, 3, "altered")


async def test_deleted_row_is_reported(settings, database) -> None:
    await _fill(database, 5)
    async with database.session() as s:
        await s.execute(text("DELETE FROM audit_entry WHERE seq = 2"))
        await s.commit()
    done = _cli(settings, "audit", "verify")
    assert done.returncode == 1
    assert "BROKEN at entry #2" in done.stdout
    assert "missing" in done.stdout


async def test_deleted_last_row_is_reported(settings, database) -> None:
    await _fill(database, 4)
    async with database.session() as s:
        await s.execute(text("DELETE FROM audit_entry WHERE seq = 4"))
        await s.commit()
    report = _cli(settings, "audit", "verify", "--json")
    assert report.returncode == 1
    assert '"first_broken_seq": 4' in report.stdout


async def test_api_reports_the_broken_link(client, world, database) -> None:
    await _fill(database, 3)
    async with database.session() as s:
        await s.execute(text("UPDATE audit_entry SET action = 'forged' WHERE seq = 2"))
        await s.commit()
    r = await client.get("/api/v1/audit/verify", headers=world.auth("auditor"))
    assert r.json()["ok"] is False
    assert r.json()["first_broken_seq"] == 2


async def test_concurrent_writers_make_one_unbroken_chain(database) -> None:
    import asyncio

    async def writer(i: int) -> None:
        async with database.session() as s:
            await audit.append(s, action="test.concurrent", data={"writer": i, "step": 1})
            await asyncio.sleep(0.01 * (i % 3))  # interleave the transactions
            await audit.append(s, action="test.concurrent", data={"writer": i, "step": 2})
            await s.commit()

    async def rolled_back() -> None:
        async with database.session() as s:
            await audit.append(s, action="test.never")
            await s.rollback()

    await asyncio.gather(*(writer(i) for i in range(12)), rolled_back())
    async with database.session() as s:
        report = await audit.verify_chain(s)
        entries = (await s.execute(text("SELECT action, data FROM audit_entry ORDER BY seq"))).all()
    assert report.ok, report.reason
    assert report.entries == 24
    assert all(action == "test.concurrent" for action, _ in entries)


async def test_other_processes_and_a_failed_commit_leave_one_unbroken_chain(settings, database) -> None:
    """Another process appending between two of this one, or a commit that fails after the
    entries were chained, must not fork or break the chain."""
    import pytest
    from sqlalchemy.exc import IntegrityError

    from service.audit.models import AuditEntry

    other = Database(settings.effective_database_url)  # another API process: its own connections
    try:
        await _fill(database, 1)
        await _fill(other, 2)
        await _fill(database, 1)  # the head moved twice since this one last appended
        async with database.session() as s:
            await audit.append(s, action="test.never")
            s.add(AuditEntry(seq=1, action="duplicate", prev_hash="", hash=""))  # fails at commit
            with pytest.raises(IntegrityError):
                await s.commit()
        await _fill(database, 1)
        await _fill(other, 1)
    finally:
        await other.dispose()
    async with database.session() as s:
        report = await audit.verify_chain(s)
        actions = (await s.execute(text("SELECT action FROM audit_entry ORDER BY seq"))).scalars().all()
    assert report.ok, report.reason
    assert actions == ["test.step"] * 6


def test_the_database_hashes_what_entry_hash_hashes() -> None:
    """PostgreSQL hashes the text the service puts around the previous hash and the sequence
    number; for every kind of content it must be the text ``entry_hash`` hashes."""
    import hashlib
    from datetime import UTC, datetime

    from service.audit.service import _BETWEEN, PendingEntry, _around_chained

    at = datetime(2026, 11, 22, 3, 4, 5, 678901, tzinfo=UTC)
    contents = [
        {}, {"i": 1}, {"text": "Kế hoạch số 35-KH/HU", "nested": {"b": [1, None, "ư"], "a": True}},
        {"prev_hash": "", "seq": 0, "unit_id": "x"},  # the chained keys inside the data
        {"quote": '"prev_hash":"","seq":0,', "tab": "a\tb\n", "emoji": "📄"},
    ]
    for n, data in enumerate(contents):
        for unit_id in (None, "U1", 'Tỉnh "ủy"'):
            entry = PendingEntry(at, "user1" if n % 2 else None, unit_id, "document.sent", "doc1", None, data)
            entry.seq, entry.prev_hash = 1000 + n, hashlib.sha256(str(n).encode()).hexdigest()
            before, after = _around_chained(entry)
            text = before + entry.prev_hash + _BETWEEN + str(entry.seq) + after
            assert hashlib.sha256(text.encode()).hexdigest() == audit.entry_hash(entry)


async def test_a_missing_head_is_reported_and_refuses_new_entries(database) -> None:
    import pytest
    from sqlalchemy.exc import IntegrityError

    await _fill(database, 3)
    async with database.session() as s:
        await s.execute(text("DELETE FROM audit_head"))
        await s.commit()
    async with database.session() as s:
        report = await audit.verify_chain(s)
    assert not report.ok
    assert "head row is missing" in report.reason
    with pytest.raises((RuntimeError, IntegrityError)):  # never a chain started over from nothing
        await _fill(database, 1)
    async with database.session() as s:
        assert (await s.execute(text("SELECT count(*) FROM audit_entry"))).scalar_one() == 3


async def test_entries_of_a_rolled_back_transaction_are_never_chained(database) -> None:
    async with database.session() as s:
        await audit.append(s, action="test.never")  # nothing sent to the database yet
        await s.rollback()
        await audit.append(s, action="test.step")
        await s.commit()
    async with database.session() as s:
        actions = (await s.execute(text("SELECT action FROM audit_entry ORDER BY seq"))).scalars().all()
    assert actions == ["test.step"]


async def test_a_check_while_writers_append_sees_an_intact_chain(database) -> None:
    from service.audit import verify_chain

    await _fill(database, 3)
    done = asyncio.Event()

    async def writer() -> None:
        for _ in range(30):
            await _fill(database, 1)
        done.set()

    async def check() -> list[tuple[bool, str]]:
        reports = []
        while not done.is_set():
            async with database.session() as s:
                report = await verify_chain(s, batch=4)  # several batches: the writers get in between
            reports.append((report.ok, report.reason))
        return reports

    *_, reports = await asyncio.gather(writer(), writer(), check())

    assert len(reports) >= 3
    assert [r for r in reports if not r[0]] == []
    async with database.session() as s:
        assert (await verify_chain(s)).entries == 3 + 60


async def test_a_head_moved_back_to_hide_later_entries_is_reported(settings, database) -> None:
    await _fill(database, 5)
    async with database.session() as s:
        third = (await s.execute(text("SELECT hash FROM audit_entry WHERE seq = 3"))).scalar_one()
        await s.execute(text("UPDATE audit_head SET seq = 3, hash = :h WHERE id = 1"), {"h": third})
        await s.execute(text("UPDATE audit_entry SET data = :d WHERE seq = 5"), {"d": '{"i": 99}'})
        await s.commit()
    _broken(settings, 4, "beyond the chain's head")


async def test_only_the_whole_tree_s_auditor_or_admin_walks_the_chain(client, world) -> None:
    # The chain holds every unit's entries: its length alone tells a commune when other units act.
    made = {}
    for username, roles, extra in (("kiemtra.tanlap", ["auditor"], {"audit_root": "000.00.01.H99"}),
                                   ("quantri.tanlap", ["admin"], {})):
        r = await client.post("/api/v1/users", headers=world.auth("admin"),
                              json={"username": username, "full_name": "Nguyễn Văn Kiểm", "roles": roles,
                                    "unit": "000.00.01.H99", **extra})
        assert r.status_code == 201, r.text
        tok = await client.post(f"/api/v1/users/{r.json()['id']}/tokens", headers=world.auth("admin"),
                                json={"label": "test", "days": 1})
        made[username] = {"Authorization": f"Bearer {tok.json()['token']}"}
    for headers in made.values():
        r = await client.get("/api/v1/audit/verify", headers=headers)
        assert r.status_code == 403, r.text
        assert "whole tree" in r.json()["detail"]
        assert "entries" not in r.json()
    for who in ("auditor", "admin"):
        r = await client.get("/api/v1/audit/verify", headers=world.auth(who))
        assert r.status_code == 200, r.text
        assert r.json()["ok"] is True
    # The province's administrator who also audits one commune: the admin's reach counts.
    both = await client.post("/api/v1/users", headers=world.auth("admin"),
                             json={"username": "quantri.kiemtra", "full_name": "Nguyễn Văn Quản",
                                   "unit": "000.00.00.H99", "roles": ["admin", "auditor"],
                                   "audit_root": "000.00.01.H99"})
    tok = await client.post(f"/api/v1/users/{both.json()['id']}/tokens", headers=world.auth("admin"),
                            json={"label": "test", "days": 1})
    r = await client.get("/api/v1/audit/verify", headers={"Authorization": f"Bearer {tok.json()['token']}"})
    assert r.status_code == 200, r.text
