"""The worker's pipeline: leases renewed while a batch is slow, urgent first under load, clean stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from service.mail import MailAttempt, Worker
from service.mail.service import Job, Outcome
from service.outbox.models import OutboxEvent
from service.storage.db import Database
from service.storage.types import utcnow

from .conftest import add_document, add_events, add_unit, mail_config
from .pki import Pki
from .smtpserver import SubmissionServer

pytestmark = pytest.mark.asyncio


async def _until(done: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("not there in time")
        await asyncio.sleep(0.02)


async def _events(db: Database) -> list[OutboxEvent]:
    async with db.session() as s:
        return list((await s.execute(select(OutboxEvent))).scalars())


async def test_a_batch_slower_than_the_lease_is_not_taken_by_another_worker(
    db: Database, smtp_server: SubmissionServer, pki: Pki, tmp_path: Path
) -> None:
    sender = await add_unit(db, "Tỉnh ủy", ["tu@so.vn"])
    units = [await add_unit(db, f"Chi bộ {i}", [f"cb{i}@so.vn"]) for i in range(6)]
    doc = await add_document(db, sender)
    await add_events(db, doc, units)
    smtp_server.handler.data_delay_s = 0.3  # 6 messages on one connection: ~1.8 s, three leases long
    config = mail_config(smtp_server, pki, tmp_path, lease_s=0.6, pool_size=1, batch_size=10)
    slow, rival = await Worker.create(db, config), await Worker.create(db, config)
    stop = asyncio.Event()
    running = asyncio.create_task(slow.run(stop))
    await _until(lambda: len(smtp_server.handler.messages) >= 1)
    rival_claims = 0
    while len(smtp_server.handler.messages) < 6:  # the rival keeps trying all along
        rival_claims += await rival.run_once()
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    stop.set()
    await running
    await rival.close()

    assert rival_claims == 0
    ids = smtp_server.handler.message_ids()
    assert len(ids) == 6
    assert set(ids.values()) == {1}
    async with db.session() as s:
        workers = set((await s.execute(select(MailAttempt.worker))).scalars())
    assert workers == {slow.owner}
    assert {e.state for e in await _events(db)} == {"sent"}


async def test_an_urgent_event_overtakes_the_queued_normal_ones(
    db: Database, smtp_server: SubmissionServer, pki: Pki, tmp_path: Path
) -> None:
    sender = await add_unit(db, "Tỉnh ủy", ["tu@so.vn"])
    units = [await add_unit(db, f"Chi bộ {i}", [f"cb{i}@so.vn"]) for i in range(80)]
    urgent_unit = await add_unit(db, "Đảng ủy xã", ["hoatoc@xa.vn"])
    doc = await add_document(db, sender)
    await add_events(db, doc, units)
    smtp_server.handler.data_delay_s = 0.02
    config = mail_config(smtp_server, pki, tmp_path, pool_size=2, batch_size=10)
    worker = await Worker.create(db, config)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await _until(lambda: len(smtp_server.handler.messages) >= 10)
    [urgent] = await add_events(db, doc, [urgent_unit], priority=3)
    queued_at = len(smtp_server.handler.messages)
    await _until(lambda: any(m.rcpt_tos == ["hoatoc@xa.vn"] for m in smtp_server.handler.messages))
    position = [m.rcpt_tos for m in smtp_server.handler.messages].index(["hoatoc@xa.vn"])
    stop.set()
    await running

    # Behind at most what was claimed before it (one batch) and what was on the wire.
    assert position - queued_at <= config.batch_size + 2 * config.pool_size
    async with db.session() as s:
        event = await s.get(OutboxEvent, urgent.id)
        still_queued = (await s.execute(select(OutboxEvent).where(OutboxEvent.state != "sent"))).all()
    assert event is not None
    assert event.state == "sent"
    assert len(still_queued) > 20  # it did not wait for the backlog


async def test_stopping_hands_back_claimed_events_at_once(
    db: Database, smtp_server: SubmissionServer, pki: Pki, tmp_path: Path
) -> None:
    sender = await add_unit(db, "Tỉnh ủy", ["tu@so.vn"])
    units = [await add_unit(db, f"Chi bộ {i}", [f"cb{i}@so.vn"]) for i in range(8)]
    doc = await add_document(db, sender)
    await add_events(db, doc, units)
    smtp_server.handler.data_delay_s = 0.2
    config = mail_config(smtp_server, pki, tmp_path, pool_size=1, batch_size=8, lease_s=300.0)
    first = await Worker.create(db, config)
    stop = asyncio.Event()
    running = asyncio.create_task(first.run(stop))
    await _until(lambda: len(smtp_server.handler.messages) >= 1)
    stop.set()
    await running
    events = await _events(db)
    assert not any(e.state == "sending" or e.lease_owner for e in events)  # nothing held for 300 s
    sent_first = len(smtp_server.handler.messages)
    assert 1 <= sent_first < 8

    smtp_server.handler.data_delay_s = 0.0
    second = await Worker.create(db, config)
    await second.drain()  # no waiting for a lease to run out
    await second.close()
    ids = smtp_server.handler.message_ids()
    assert len(ids) == 8
    assert set(ids.values()) == {1}
    assert {e.state for e in await _events(db)} == {"sent"}


async def test_a_worker_whose_lease_was_taken_over_stops_sending_that_event(
    db: Database, smtp_server: SubmissionServer, pki: Pki, tmp_path: Path
) -> None:
    sender = await add_unit(db, "Tỉnh ủy", ["tu@so.vn"])
    unit = await add_unit(db, "Đảng ủy xã", [f"vt{i}@xa.vn" for i in range(8)])
    doc = await add_document(db, sender)
    [event] = await add_events(db, doc, [unit])
    smtp_server.handler.data_delay_s = 0.25
    config = mail_config(smtp_server, pki, tmp_path, pool_size=1, lease_s=0.6, attach_pdf=False)
    worker = await Worker.create(db, config)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await _until(lambda: len(smtp_server.handler.messages) >= 1)
    async with db.session() as s:  # as if another worker had taken the event over (and held it)
        await s.execute(update(OutboxEvent).where(OutboxEvent.id == event.id)
                        .values(lease_owner="rival", lease_until=utcnow() + timedelta(seconds=60)))
        await s.commit()
    await asyncio.sleep(1.0)  # a renewal (every 0.2 s) notices; the rest is not sent
    stop.set()
    await running
    assert len(smtp_server.handler.messages) < 8
    async with db.session() as s:
        still = await s.get(OutboxEvent, event.id)
    assert still is not None
    assert still.lease_owner == "rival"


class _FirstWriteFails(Worker):
    """A worker whose first write of outcomes fails, as when the database is away for a moment."""

    failed = False

    async def record(self, jobs: Sequence[Job], outcomes: Sequence[Outcome], *, claim: int = 0) -> list[Job]:
        if outcomes and not self.failed:
            self.failed = True
            raise OSError("database unavailable")
        return await super().record(jobs, outcomes, claim=claim)


async def test_outcomes_whose_write_failed_are_written_later_and_nothing_is_sent_twice(
    db: Database, smtp_server: SubmissionServer, pki: Pki, tmp_path: Path
) -> None:
    sender = await add_unit(db, "Tỉnh ủy", ["tu@so.vn"])
    units = [await add_unit(db, f"Chi bộ {i}", [f"cb{i}@so.vn"]) for i in range(12)]
    await add_events(db, await add_document(db, sender), units)
    smtp_server.handler.data_delay_s = 0.02
    config = mail_config(smtp_server, pki, tmp_path, pool_size=1, batch_size=3, lease_s=300.0)
    worker = await _FirstWriteFails.create(db, config)
    assert isinstance(worker, _FirstWriteFails)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))

    async def all_sent() -> bool:
        return {e.state for e in await _events(db)} == {"sent"}

    deadline = time.monotonic() + 15
    while not await all_sent():
        assert time.monotonic() < deadline, "not all sent in time"
        await asyncio.sleep(0.05)
    stop.set()
    await running

    assert worker.failed
    ids = smtp_server.handler.message_ids()
    assert len(ids) == 12
    assert set(ids.values()) == {1}
    async with db.session() as s:
        attempts = list((await s.execute(select(MailAttempt.event_id))).scalars())
    assert len(attempts) == 12  # each answer written once, after the failed write
