"""SQLite statements run on the event loop; only taking the write lock may wait, and it
waits off the loop: another process holding the database delays writes, not the service."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import httpx
import pytest

from tests.factories.pdf import metadata, upload_form


@pytest.fixture
def db_url(tmp_path, sqlite_template) -> str:  # SQLite only: this is about its driver
    import shutil

    path = tmp_path / "docexchange.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


async def test_a_write_waits_for_another_process_lock_while_the_service_keeps_answering(
        app, client: httpx.AsyncClient, world, db_url) -> None:
    other = sqlite3.connect(db_url.removeprefix("sqlite+aiosqlite:///"), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # e.g. `docexchange units import` in another process
    try:
        upload = asyncio.create_task(client.post("/api/v1/documents", headers=world.auth("tu"),
                                                 **upload_form(metadata("41-CV/TU"))))
        await asyncio.sleep(0.3)
        assert not upload.done(), "the upload should wait for the other process's write lock"
        started = time.perf_counter()
        health = await client.get("/healthz")
        assert health.status_code == 200
        assert time.perf_counter() - started < 0.5, "the event loop must not be blocked by the wait"
    finally:
        other.execute("COMMIT")
        other.close()
    answer = await asyncio.wait_for(upload, 10)
    assert answer.status_code == 201, answer.text
    listing = await client.get("/api/v1/outbox", headers=world.auth("tu"))
    assert [d["number_notation"] for d in listing.json()["items"]] == ["41-CV/TU"]


async def test_a_large_commit_leaves_the_loop_free_and_is_on_disk_when_it_returns(db_url) -> None:
    """Writing a big transaction's pages (a mail batch, a send to many units) takes
    milliseconds: meanwhile the loop serves the rest (the mail worker's connections)."""
    from sqlalchemy import text

    from service.storage.db import Database

    db = Database(db_url)
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    try:
        async with db.session() as session:
            await session.execute(text("CREATE TABLE probe (n INTEGER, pad TEXT)"))
            await session.execute(text("INSERT INTO probe VALUES (:n, :pad)"),
                                  [{"n": n, "pad": "x" * 400} for n in range(5000)])
            ticker = asyncio.create_task(other_work())
            await asyncio.sleep(0)
            before = turns
            await session.commit()
            during = turns - before
            ticker.cancel()
    finally:
        await db.dispose()
    assert during > 0, "the loop was blocked for the whole commit"
    reader = sqlite3.connect(db_url.removeprefix("sqlite+aiosqlite:///"))
    try:
        assert reader.execute("SELECT count(*), sum(n) FROM probe").fetchone() == (5000, sum(range(5000)))
    finally:
        reader.close()


async def test_commits_reach_the_database_file_without_a_request_checkpointing(db_url, tmp_path) -> None:
    """The WAL is copied into the database file by the background thread: the service's own
    connection checkpoints only past a large safety mark, so no request waits for a sync."""
    import shutil

    from sqlalchemy import text

    from service.storage.checkpoint import SAFETY_PAGES
    from service.storage.db import Database

    path = db_url.removeprefix("sqlite+aiosqlite:///")
    db = Database(db_url)
    try:
        async with db.session() as s:
            autocheckpoint = (await s.execute(text("PRAGMA wal_autocheckpoint"))).scalar_one()
            await s.execute(text("CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT)"))
            await s.execute(text("INSERT INTO note (body) VALUES ('Kế hoạch'), ('Thông báo')"))
            await s.commit()
        assert autocheckpoint == SAFETY_PAGES
        deadline = time.monotonic() + 5
        rows = 0
        while rows < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            shutil.copyfile(path, tmp_path / "file-only.db")  # the database file alone, without its WAL
            only = sqlite3.connect(tmp_path / "file-only.db")
            try:
                rows = only.execute("SELECT count(*) FROM sqlite_master WHERE name = 'note'").fetchone()[0] and \
                    only.execute("SELECT count(*) FROM note").fetchone()[0]
            finally:
                only.close()
        assert rows == 2
    finally:
        await db.dispose()
