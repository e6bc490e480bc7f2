"""An arrival notification reaches every mailbox of the recipient unit, in correct Vietnamese."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from service.mail import Worker
from service.storage.db import Database

from .conftest import add_document, add_events, add_unit, mail_config
from .pki import Pki
from .smtpserver import SubmissionServer

pytestmark = pytest.mark.asyncio


def _nfc(text: str) -> bool:
    return unicodedata.is_normalized("NFC", text)


async def test_arrival_reaches_every_mailbox_in_vietnamese(
    db: Database, smtp_server: SubmissionServer, pki: Pki, tmp_path: Path
) -> None:
    sender = await add_unit(db, "Tỉnh ủy Hòa Bình", ["vanthu@tinhuy.vn"])
    a = await add_unit(db, "Đảng ủy xã Quỳnh Lâm", ["vanthu@quynhlam.vn", "bithu@quynhlam.vn"])
    b = await add_unit(db, "Đảng ủy phường Thịnh Lang", ["vanthu@thinhlang.vn"])
    # Decomposed (NFD) input must come out NFC.
    subject = unicodedata.normalize("NFD", "Về việc tổ chức Hội nghị tổng kết công tác Đảng năm 2026")
    doc = await add_document(db, sender, subject=subject, urgency=3)
    await add_events(db, doc, [a, b], priority=3)

    worker = await Worker.create(db, mail_config(smtp_server, pki, tmp_path))
    await worker.drain()
    await worker.close()

    got = {m.rcpt_tos[0]: m.message for m in smtp_server.handler.messages}
    assert set(got) == {"vanthu@quynhlam.vn", "bithu@quynhlam.vn", "vanthu@thinhlang.vn"}
    msg = got["vanthu@quynhlam.vn"]
    expected = "HỎA TỐC: Văn bản đến: 12-TB/TU - Về việc tổ chức Hội nghị tổng kết công tác Đảng năm 2026"
    assert str(msg["Subject"]) == expected
    assert _nfc(str(msg["Subject"]))
    assert msg["Importance"] == "high"
    assert msg["X-Priority"] == "1"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert "Hệ thống trao đổi văn bản" in str(msg["From"])
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for body in (text, html):
        assert _nfc(body)
        assert "Đảng ủy xã Quỳnh Lâm" in body
        assert "Tỉnh ủy Hòa Bình" in body
        assert "Hỏa tốc" in body
        assert f"https://vb.so.vn/api/v1/documents/{doc.id}" in body
        assert "30/11/2026" in body
    assert {str(m["Message-ID"]) for m in got.values()}.__len__() == 3
