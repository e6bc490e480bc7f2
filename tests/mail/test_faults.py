"""Faults a Zimbra relay really produces: down, 4xx/5xx per recipient, lost DATA reply, too big."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.documents import blob_path
from service.mail import Scope, SmtpPool, Worker, get_notification, list_notifications, retry_notification
from service.storage.db import Database

from .conftest import add_document, add_events, add_unit, mail_config
from .helpers import drain_until
from .pki import Pki
from .smtpserver import SubmissionServer

pytestmark = pytest.mark.asyncio


async def test_server_down_then_back_every_notification_arrives_once(db: Database, pki: Pki, tmp_path: Path) -> None:
    server = SubmissionServer(pki.server_cert, pki.server_key)  # not started: connection refused
    sender = await add_unit(db, "Tỉnh ủy", ["tu@so.vn"])
    units = [await add_unit(db, f"Chi bộ {i}", [f"cb{i}@so.vn"]) for i in range(5)]
    doc = await add_document(db, sender)
    await add_events(db, doc, units)
    worker = await Worker.create(db, mail_config(server, pki, tmp_path))
    await worker.run_once()
    async with db.session() as s:
        waiting = await list_notifications(s, Scope(None), state="deferred")
    assert len(waiting) == 5
    assert all("connect" in e.last_error.lower() or e.last_error for e in waiting)
    server.start()
    try:
        await drain_until(worker, lambda: len(server.handler.messages) >= 5)
        await worker.drain()
    finally:
        await worker.close()
        server.stop()
    counts = server.handler.message_ids()
    assert len(counts) == 5
    assert set(counts.values()) == {1}


async def test_450_is_retried_for_that_recipient_only_and_550_is_a_recorded_failure(
    db: Database, smtp_server: SubmissionServer, pki: Pki, tmp_path: Path
) -> None:
    handler = smtp_server.handler
    handler.rcpt_replies = {"day@xa.vn": "450 4.2.2 Mailbox full", "sai@xa.vn": "550 5.1.1 User unknown"}
    sender = await add_unit(db, "Tỉnh ủy", ["vanthu@tinhuy.vn"])
    unit = await add_unit(db, "Đảng ủy xã", ["ok@xa.vn", "day@xa.vn", "sai@xa.vn"])
    doc = await add_document(db, sender)
    [event] = await add_events(db, doc, [unit])
    worker = await Worker.create(db, mail_config(smtp_server, pki, tmp_path))
    await worker.run_once()
    handler.rcpt_replies.pop("day@xa.vn")  # the mailbox has room again
    await drain_until(worker, lambda: any("day@xa.vn" in m.rcpt_tos for m in handler.messages))
    await worker.drain()
    await worker.close()

    to = [m.rcpt_tos[0] for m in handler.messages]
    assert to.count("ok@xa.vn") == 1
    assert to.count("day@xa.vn") == 1
    assert "sai@xa.vn" not in to
    async with db.session() as s:
        detail = await get_notification(s, Scope(sender.id), event.id)  # the sending unit sees it
    states = {r.address: (r.state, r.last_code) for r in detail.recipients}
    assert states == {"ok@xa.vn": ("sent", 250), "day@xa.vn": ("sent", 250), "sai@xa.vn": ("failed", 550)}
    assert detail.event.state == "failed"
    tries = [a.address for a in detail.attempts]
    assert tries.count("sai@xa.vn") == 1
    assert tries.count("day@xa.vn") == 2
    assert any(a.code == 550 and "User unknown" in a.reply for a in detail.attempts)
    # The sending unit's clerk is told by mail.
    report = [m.message for m in handler.messages if m.rcpt_tos == ["vanthu@tinhuy.vn"]]
    assert len(report) == 1
    assert "Không gửi được thông báo" in str(report[0]["Subject"])
    assert "sai@xa.vn" in report[0].get_body(("plain",)).get_content()


async def test_connection_lost_after_data_resend_carries_the_same_message_id(
    db: Database, smtp_server: SubmissionServer, pki: Pki, tmp_path: Path
) -> None:
    smtp_server.handler.drop_after_data = 1
    sender = await add_unit(db, "Tỉnh ủy", ["tu@so.vn"])
    unit = await add_unit(db, "Chi bộ", ["cb@so.vn"])
    doc = await add_document(db, sender)
    await add_events(db, doc, [unit])
    worker = await Worker.create(db, mail_config(smtp_server, pki, tmp_path))
    await drain_until(worker, lambda: len(smtp_server.handler.messages) >= 2)
    await worker.close()
    ids = smtp_server.handler.message_ids()
    assert len(ids) == 1
    assert list(ids.values()) == [2]


async def test_oversize_refusal_falls_back_to_a_message_without_the_pdf(db: Database, pki: Pki, tmp_path: Path) -> None:
    server = SubmissionServer(pki.server_cert, pki.server_key, data_size_limit=200_000)
    server.start()
    sender = await add_unit(db, "Tỉnh ủy", ["tu@so.vn"])
    unit = await add_unit(db, "Chi bộ", ["cb@so.vn"])
    sha = "cd" * 32
    blob = blob_path(tmp_path / "data" / "blobs", sha)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"%PDF-1.7\n" + b"0" * 300_000)
    doc = await add_document(db, sender, size=300_009, sha=sha)
    [event] = await add_events(db, doc, [unit])
    worker = await Worker.create(db, mail_config(server, pki, tmp_path))
    try:
        await worker.drain()
    finally:
        await worker.close()
        server.stop()
    [got] = server.handler.messages
    assert not any(part.get_filename() for part in got.message.walk())
    async with db.session() as s:
        detail = await get_notification(s, Scope(None), event.id)
    assert detail.recipients[0].state == "sent"
    assert detail.recipients[0].without_attachment
    assert any(a.code == 250 for a in detail.attempts)


async def test_small_pdf_is_attached(db: Database, smtp_server: SubmissionServer, pki: Pki, tmp_path: Path) -> None:
    sender = await add_unit(db, "Tỉnh ủy", ["tu@so.vn"])
    unit = await add_unit(db, "Chi bộ", ["cb@so.vn"])
    sha = "ef" * 32
    blob = blob_path(tmp_path / "data" / "blobs", sha)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"%PDF-1.7\n%%EOF\n")
    doc = await add_document(db, sender, size=15, sha=sha)
    await add_events(db, doc, [unit])
    worker = await Worker.create(db, mail_config(smtp_server, pki, tmp_path))
    await worker.drain()
    await worker.close()
    [got] = smtp_server.handler.messages
    [pdf] = [p for p in got.message.walk() if p.get_filename()]
    assert pdf.get_filename() == "12-TB-TU.pdf"
    assert pdf.get_content() == b"%PDF-1.7\n%%EOF\n"


async def test_more_recipients_than_the_limit_are_split_into_transactions(
    smtp_server: SubmissionServer, pki: Pki, tmp_path: Path
) -> None:
    pool = SmtpPool(mail_config(smtp_server, pki, tmp_path, max_recipients=10))
    addresses = [f"cb{i}@so.vn" for i in range(25)]
    results = await pool.send("gw@so.vn", addresses, b"Subject: x\r\n\r\nbody\r\n")
    await pool.close()
    assert [len(m.rcpt_tos) for m in smtp_server.handler.messages] == [10, 10, 5]
    assert all(r.code == 250 for r in results)
    assert len(results) == 25


async def test_a_stored_mailbox_no_header_can_carry_fails_at_once_and_the_others_get_the_message(
    db: Database, smtp_server: SubmissionServer, pki: Pki, tmp_path: Path
) -> None:
    # Stored before units' mailboxes were checked: a line break that would add a Bcc header,
    # accented letters the gateway cannot address.
    handler = smtp_server.handler
    sender = await add_unit(db, "Tỉnh ủy", ["vanthu@tinhuy.vn"])
    unit = await add_unit(db, "Đảng ủy xã", ["ok@xa.vn", "x@y.vn\r\nBcc: evil@z.vn", "văn@thư.vn"])
    doc = await add_document(db, sender)
    [event] = await add_events(db, doc, [unit])
    worker = await Worker.create(db, mail_config(smtp_server, pki, tmp_path))
    await drain_until(worker, lambda: any(m.rcpt_tos == ["vanthu@tinhuy.vn"] for m in handler.messages))
    await worker.drain()
    await worker.close()

    assert [m.rcpt_tos for m in handler.messages if m.rcpt_tos != ["vanthu@tinhuy.vn"]] == [["ok@xa.vn"]]
    headers = [(name, str(value)) for m in handler.messages for name, value in m.message.items()]
    assert [h for h in headers if h[0].lower() == "bcc" or "evil@z.vn" in h[1]] == []
    report = [m.message for m in handler.messages if m.rcpt_tos == ["vanthu@tinhuy.vn"]]
    assert "văn@thư.vn" in report[0].get_body(("plain",)).get_content()  # the clerk is told which
    async with db.session() as s:
        detail = await get_notification(s, Scope(sender.id), event.id)
    states = {r.address: r.state for r in detail.recipients}
    assert states == {"ok@xa.vn": "sent", "x@y.vn\r\nBcc: evil@z.vn": "failed", "văn@thư.vn": "failed"}
    assert "correct the unit's mailboxes" in detail.event.last_error
    assert [a.address for a in detail.attempts] == ["ok@xa.vn"]  # the others were never tried
    # An operator's retry does not send them either: no retry makes such an address work.
    async with db.session() as s:
        await retry_notification(s, Scope(sender.id), event.id)
        await s.commit()
        states = {r.address: r.state for r in (await get_notification(s, Scope(sender.id), event.id)).recipients}
    assert states == {"ok@xa.vn": "sent", "x@y.vn\r\nBcc: evil@z.vn": "failed", "văn@thư.vn": "failed"}
