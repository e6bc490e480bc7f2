"""Through the API: a send and a return become mail in the unit mailboxes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from service.mail import Worker
from tests.factories.pdf import metadata, upload_form

from .conftest import mail_config


async def test_send_and_return_notify_the_right_mailboxes(app, client, world, smtp_server, pki, tmp_path: Path):
    up = await client.post("/api/v1/documents", headers=world.auth("tu"),
                           **upload_form(metadata("21-CV/TU", urgency="Thượng khẩn", subject="Về việc sơ kết")))
    doc_id = up.json()["id"]
    await client.post(f"/api/v1/documents/{doc_id}/send", headers=world.auth("tu"),
                      json={"recipients": ["000.00.01.H99", "000.00.02.H99"]})
    pending = await client.get("/api/v1/notifications", headers=world.auth("xa1"))
    assert pending.status_code == 200, pending.text
    assert pending.json()["count"] == 1, pending.text

    worker = await Worker.create(app.state.db, mail_config(smtp_server, pki, tmp_path))
    await worker.drain()
    got = {m.rcpt_tos[0]: m.message for m in smtp_server.handler.messages}
    assert set(got) == {"u0000001H99@example.vn", "u0000002H99@example.vn"}
    subject = str(got["u0000001H99@example.vn"]["Subject"])
    assert subject.startswith("THƯỢNG KHẨN:")
    assert "21-CV/TU" in subject
    assert "Về việc sơ kết" in subject

    # The commune returns it: the province's mailbox hears why.
    inbox = (await client.get("/api/v1/inbox", headers=world.auth("xa1"))).json()["items"]
    await client.post(f"/api/v1/deliveries/{inbox[0]['id']}/status", headers=world.auth("xa1"),
                      json={"status": "02", "note": "Sai đơn vị nhận"})
    await worker.drain()
    await worker.close()
    returned = [m.message for m in smtp_server.handler.messages if m.rcpt_tos == ["u0000000H99@example.vn"]]
    assert len(returned) == 1
    body = returned[0].get_body(("plain",)).get_content()
    assert "Sai đơn vị nhận" in body
    # Which unit returned it (one of many recipients), and a link a mail reader can open.
    assert "đã bị Đảng ủy xã Tân Lập trả lại" in body, body
    assert f"https://vb.so.vn/api/v1/documents/{doc_id}" in body, body
    arrival = got["u0000001H99@example.vn"].get_body(("plain",)).get_content()
    assert f"https://vb.so.vn/api/v1/documents/{doc_id}" in arrival, arrival

    # The sending unit sees the sent notifications, with the server's answers.
    listed = (await client.get("/api/v1/notifications", params={"state": "sent"},
                               headers=world.auth("admin"))).json()
    assert listed["count"] >= 3
    one = await client.get(f"/api/v1/notifications/{listed['notifications'][0]['id']}", headers=world.auth("admin"))
    assert one.status_code == 200
    assert one.json()["recipients"][0]["last_code"] == 250


async def test_a_relay_that_refuses_the_login_defers_the_notices_until_it_is_fixed(
        app, client, world, smtp_server, pki, tmp_path: Path):
    # A rotated relay password (535 at AUTH) is the relay's problem, not the recipients': the
    # notices wait, no failure report is written, and they go out once the password is right.
    up = await client.post("/api/v1/documents", headers=world.auth("tu"), **upload_form(metadata("22-CV/TU")))
    await client.post(f"/api/v1/documents/{up.json()['id']}/send", headers=world.auth("tu"),
                      json={"recipients": ["000.00.01.H99", "000.00.02.H99"]})
    refused = await Worker.create(app.state.db, mail_config(smtp_server, pki, tmp_path, password="rotated"))
    await refused.drain()
    await refused.close()
    assert smtp_server.handler.messages == []
    states = (await client.get("/api/v1/notifications", headers=world.auth("admin"))).json()["notifications"]
    assert {n["kind"] for n in states} == {"arrival"}, states
    assert {n["state"] for n in states} == {"deferred"}, states

    await asyncio.sleep(0.6)  # the retry is due after the back-off (at most 0.5 s here)
    fixed = await Worker.create(app.state.db, mail_config(smtp_server, pki, tmp_path))
    await fixed.drain()
    await fixed.close()
    assert {m.rcpt_tos[0] for m in smtp_server.handler.messages} == {"u0000001H99@example.vn",
                                                                      "u0000002H99@example.vn"}
