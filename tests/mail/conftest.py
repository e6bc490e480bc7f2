"""Fixtures of the mail tests: a migrated database, a PKI, a real submission server."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import pytest
import pytest_asyncio

from service.documents.models import Delivery, Document
from service.mail import MailConfig
from service.outbox.models import OutboxEvent
from service.storage.db import Database
from service.storage.migrate import upgrade
from service.storage.types import new_id, utcnow
from service.units.models import Unit, User

from .pki import Pki, make_pki
from .smtpserver import PASSWORD, USERNAME, SubmissionServer

MAIL_FROM = "vanthu-tinhuy@so.vn"


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), MAIL_FROM)


@pytest.fixture
def smtp_server(pki: Pki) -> Iterator[SubmissionServer]:
    server = SubmissionServer(pki.server_cert, pki.server_key)
    server.start()
    yield server
    server.stop()


def mail_config(server: SubmissionServer, pki: Pki, tmp_path: Path, **overrides: object) -> MailConfig:
    """The zimbra preset against the test server, with short timings."""
    base = MailConfig.zimbra(
        "127.0.0.1", port=server.port, username=USERNAME, password=PASSWORD, ca_file=pki.ca_pem,
        timeout_s=5.0, mail_from=MAIL_FROM, public_base_url="https://vb.so.vn", poll_interval_s=0.05,
        lease_s=2.0, backoff_base_s=0.2, backoff_max_s=0.5, pool_size=2, data_dir=tmp_path / "data",
        overdue_sweep_s=3600.0,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


async def migrated(url: str) -> Database:
    await asyncio.to_thread(upgrade, url)
    return Database(url)


@pytest_asyncio.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await migrated(f"sqlite+aiosqlite:///{tmp_path / 'mail.db'}")
    yield database
    await database.dispose()


@pytest_asyncio.fixture
async def pg_db() -> AsyncIterator[Database]:
    """A fresh PostgreSQL database per test (DOCEX_TEST_POSTGRES_URL), dropped afterwards."""
    url = os.environ.get("DOCEX_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set DOCEX_TEST_POSTGRES_URL (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)")
    import asyncpg

    name = f"docex_mail_{uuid.uuid4().hex[:12]}"
    admin_dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(admin_dsn)
    await conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = url.rpartition("/")
    database = await migrated(f"{base}/{name}")
    try:
        yield database
    finally:
        await database.dispose()
        await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await conn.close()


# ---- factories ---------------------------------------------------------------------------------

async def add_unit(db: Database, name: str, mailboxes: list[str], parent: Unit | None = None) -> Unit:
    uid = new_id()
    path = f"{parent.path if parent else '/'}{uid}/"
    unit = Unit(id=uid, code=uid[:13], name=name, level="xa", parent_id=parent.id if parent else None,
                path=path, mailboxes=mailboxes)
    async with db.session() as s:
        s.add(unit)
        await s.commit()
    return unit


async def add_document(db: Database, sender: Unit, *, subject: str = "Về việc tổ chức Hội nghị tổng kết năm 2026",
                       urgency: int = 0, size: int = 1000, sha: str = "ab" * 32) -> Document:
    user = User(unit_id=sender.id, username=new_id(), full_name="Nguyễn Văn Thư")
    doc = Document(sender_unit_id=sender.id, created_by=user.id, number="12", notation="TB-TU",
                   number_notation="12-TB/TU", issuer="TU", dedup_key=new_id(), doc_type="Thông báo",
                   issued_on=date(2026, 11, 20), subject=subject, urgency=urgency, deadline=date(2026, 11, 30),
                   filename="12-TB-TU.pdf", sha256=sha, size=size)
    async with db.session() as s:
        s.add(user)
        await s.flush()
        s.add(doc)
        await s.commit()
    return doc


async def add_delivery(db: Database, doc: Document, recipient: Unit, created_at: datetime) -> Delivery:
    delivery = Delivery(document_id=doc.id, recipient_unit_id=recipient.id, from_unit_id=doc.sender_unit_id,
                        urgency=doc.urgency, created_at=created_at)
    async with db.session() as s:
        s.add(delivery)
        await s.commit()
    return delivery


async def add_events(db: Database, doc: Document, units: list[Unit], *, kind: str = "arrival",
                     priority: int = 0, payload: dict[str, object] | None = None) -> list[OutboxEvent]:
    now = utcnow()
    events = [OutboxEvent(kind=kind, unit_id=u.id, document_id=doc.id, priority=priority, next_attempt_at=now,
                          created_at=now, updated_at=now, payload=dict(payload or {})) for u in units]
    async with db.session() as s:
        s.add_all(events)
        await s.commit()
    return events
