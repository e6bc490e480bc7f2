"""An S/MIME-signed notification verifies with openssl against the CA; a changed body does not."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from service.mail import Worker
from service.storage.db import Database

from .conftest import add_document, add_events, add_unit, mail_config
from .pki import Pki
from .smtpserver import SubmissionServer

pytestmark = pytest.mark.asyncio


async def _openssl_verify(eml: Path, ca: Path) -> int:
    proc = await asyncio.create_subprocess_exec(
        "openssl", "smime", "-verify", "-in", str(eml), "-CAfile", str(ca), "-out", "/dev/null",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    await proc.communicate()
    return proc.returncode if proc.returncode is not None else -1


async def test_signed_notification_verifies_and_a_changed_body_fails(
    db: Database, smtp_server: SubmissionServer, pki: Pki, tmp_path: Path
) -> None:
    sender = await add_unit(db, "Tỉnh ủy Hòa Bình", ["tu@so.vn"])
    unit = await add_unit(db, "Đảng ủy xã Quỳnh Lâm", ["vanthu@quynhlam.vn"])
    doc = await add_document(db, sender, urgency=1)
    await add_events(db, doc, [unit], priority=1)
    config = mail_config(smtp_server, pki, tmp_path, smime_cert=pki.smime_cert, smime_key=pki.smime_key,
                         smime_key_passphrase=pki.smime_passphrase)
    worker = await Worker.create(db, config)
    await worker.drain()
    await worker.close()

    [got] = smtp_server.handler.messages
    msg = got.message
    assert msg.get_content_type() == "multipart/signed"
    assert str(msg["Subject"]).startswith("KHẨN: Văn bản đến: 12-TB/TU")
    text = msg.get_body(("plain",)).get_content()
    assert "Đảng ủy xã Quỳnh Lâm" in text
    eml = tmp_path / "signed.eml"
    eml.write_bytes(got.raw)
    assert await _openssl_verify(eml, pki.ca_pem) == 0

    tampered = tmp_path / "tampered.eml"
    # "Khẩn" in the plain part, quoted-printable: change a letter of the body.
    assert b"Kh=E1=BA=A9n" in got.raw
    tampered.write_bytes(got.raw.replace(b"Kh=E1=BA=A9n", b"Th=E1=BA=A9n", 1))
    assert await _openssl_verify(tampered, pki.ca_pem) == 4
