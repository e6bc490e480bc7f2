"""`docexchange worker`: the relay as its own process sends what is due and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from service.outbox.models import OutboxEvent
from service.storage.db import Database

from .conftest import MAIL_FROM, add_document, add_events, add_unit
from .pki import Pki
from .smtpserver import PASSWORD, USERNAME, SubmissionServer


async def test_the_worker_process_sends_what_is_due_and_stops_cleanly_on_sigterm(
        db: Database, smtp_server: SubmissionServer, pki: Pki, tmp_path: Path) -> None:
    sender = await add_unit(db, "Tỉnh ủy", ["tu@so.vn"])
    branch = await add_unit(db, "Chi bộ Đông", ["chibo.dong@so.vn"])
    [event] = await add_events(db, await add_document(db, sender), [branch])
    env = {**os.environ, "DOCEX_DATABASE_URL": db.url, "DOCEX_DATA_DIR": str(tmp_path / "data"),
           "DOCEX_SMTP_HOST": "127.0.0.1", "DOCEX_SMTP_PORT": str(smtp_server.port),
           "DOCEX_SMTP_USERNAME": USERNAME, "DOCEX_SMTP_PASSWORD": PASSWORD, "DOCEX_SMTP_CA_FILE": str(pki.ca_pem),
           "DOCEX_MAIL_FROM": MAIL_FROM, "DOCEX_MAIL_POLL_INTERVAL_S": "0.1", "DOCEX_MAIL_ATTACH_PDF": "false"}
    worker = subprocess.Popen([sys.executable, "-m", "service.cli", "worker"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not smtp_server.handler.messages and time.monotonic() < deadline and worker.poll() is None:
            await asyncio.sleep(0.1)
        assert [m.rcpt_tos for m in smtp_server.handler.messages] == [["chibo.dong@so.vn"]]
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, output.decode(errors="replace")[-2000:]
    async with db.session() as s:
        state = (await s.execute(select(OutboxEvent.state).where(OutboxEvent.id == event.id))).scalar_one()
    assert state == "sent"
