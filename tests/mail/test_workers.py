"""Leases: a worker that dies mid-batch loses its events to another; two workers never double-send."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from service.mail import MailAttempt, Worker
from service.storage.db import Database

from .conftest import add_document, add_events, add_unit, mail_config
from .helpers import drain_until
from .pki import Pki
from .smtpserver import SubmissionServer

pytestmark = pytest.mark.asyncio


async def test_events_of_a_worker_killed_mid_batch_are_sent_by_another_after_the_lease(
    db: Database, smtp_server: SubmissionServer, pki: Pki, tmp_path: Path
) -> None:
    sender = await add_unit(db, "Tỉnh ủy", ["tu@so.vn"])
    units = [await add_unit(db, f"Chi bộ {i}", [f"cb{i}@so.vn"]) for i in range(4)]
    doc = await add_document(db, sender)
    events = await add_events(db, doc, units)
    config = mail_config(smtp_server, pki, tmp_path, lease_s=1.5)
    smtp_server.handler.data_delay_s = 5.0  # the first worker hangs in DATA …
    doomed = await Worker.create(db, config)
    task = asyncio.create_task(doomed.run_once())
    await asyncio.sleep(0.5)
    task.cancel()  # … and dies holding the lease
    await asyncio.gather(task, return_exceptions=True)
    killed_at = time.monotonic()
    smtp_server.handler.data_delay_s = 0.0
    smtp_server.handler.messages.clear()

    rescuer = await Worker.create(db, config)
    assert await rescuer.run_once() == 0  # still leased: not taken yet
    await drain_until(rescuer, lambda: len(smtp_server.handler.message_ids()) >= 4)
    await rescuer.close()
    assert time.monotonic() - killed_at >= 1.0
    ids = smtp_server.handler.message_ids()
    assert len(ids) == len(events)
    assert set(ids.values()) == {1}


async def test_two_workers_on_postgresql_never_send_an_event_twice(
    pg_db: Database, smtp_server: SubmissionServer, pki: Pki, tmp_path: Path
) -> None:
    sender = await add_unit(pg_db, "Tỉnh ủy", ["tu@so.vn"])
    units = [await add_unit(pg_db, f"Chi bộ {i}", [f"cb{i}@so.vn"]) for i in range(60)]
    doc = await add_document(pg_db, sender)
    await add_events(pg_db, doc, units)
    config = mail_config(smtp_server, pki, tmp_path, batch_size=5, lease_s=30.0)
    # Two engines: as two processes would have.
    other_db = Database(pg_db.url)
    first, second = await Worker.create(pg_db, config), await Worker.create(other_db, config)
    stop = asyncio.Event()
    runs = [asyncio.create_task(w.run(stop)) for w in (first, second)]
    deadline = time.monotonic() + 20
    while len(smtp_server.handler.messages) < 60 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*runs)
    await other_db.dispose()
    ids = smtp_server.handler.message_ids()
    assert len(ids) == 60
    assert set(ids.values()) == {1}
    async with pg_db.session() as s:
        senders = set((await s.execute(select(MailAttempt.worker))).scalars())
    assert senders == {first.owner, second.owner}  # both really worked
