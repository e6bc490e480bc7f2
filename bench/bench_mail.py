"""Mail relay benchmark: outbox drain rate vs raw aiosmtplib, and urgent latency under load.

    python bench/bench_mail.py [--messages 2000] [--connections 4] [--backlog 10000]

A real aiosmtpd submission server (STARTTLS + AUTH required, like Zimbra's 587)
runs in a child process on loopback. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiosmtplib  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from service.mail import MailConfig, Worker, message_id_for  # noqa: E402
from service.mail.messages import OutgoingMessage, build_message  # noqa: E402
from service.mail.rendering import TemplateSet  # noqa: E402
from service.mail.smtp import make_tls_context  # noqa: E402
from service.outbox.models import OutboxEvent  # noqa: E402
from service.storage.db import Database  # noqa: E402
from service.storage.types import utcnow  # noqa: E402
from tests.mail.conftest import MAIL_FROM, add_document, add_unit, migrated  # noqa: E402
from tests.mail.pki import make_pki  # noqa: E402
from tests.mail.smtpserver import PASSWORD, USERNAME, SubmissionServer, free_port  # noqa: E402


def serve(folder: Path, port: int) -> None:
    """Child process: the submission server, until killed."""
    server = SubmissionServer(folder / "server.pem", folder / "server.key")
    server.port = port
    server._controller.port = port  # noqa: SLF001 - bench-only: a fixed port chosen by the parent
    server.start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


async def raw_rate(config: MailConfig, messages: list[tuple[str, bytes]], connections: int) -> float:
    """aiosmtplib alone: the same bytes over the same number of connections."""
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for item in messages:
        queue.put_nowait(item)
    tls = make_tls_context(config)

    async def lane() -> None:
        smtp = aiosmtplib.SMTP(hostname=config.host, port=config.port, start_tls=True, tls_context=tls,
                               username=USERNAME, password=PASSWORD, local_hostname="bench")
        await smtp.connect()
        while not queue.empty():
            address, raw = queue.get_nowait()
            await smtp.sendmail(config.sender, [address], raw)
        await smtp.quit()

    start = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(connections)))
    return len(messages) / (time.perf_counter() - start)


async def _units_and_events(db: Database, count: int, priority: int = 0) -> list[str]:
    sender = await add_unit(db, "Tỉnh ủy", ["tu@so.vn"])
    doc = await add_document(db, sender, size=10)
    units = [await add_unit(db, f"Chi bộ {i}", [f"cb{i}@so.vn"]) for i in range(min(count, 200))]
    now = utcnow()
    events = [OutboxEvent(kind="arrival", unit_id=units[i % len(units)].id, document_id=doc.id, priority=priority,
                          next_attempt_at=now, created_at=now, updated_at=now, payload={"i": i}) for i in range(count)]
    async with db.session() as s:
        s.add_all(events)
        await s.commit()
    return [e.id for e in events]


async def _count_sent(db: Database) -> int:
    async with db.session() as s:
        return int((await s.execute(select(func.count()).where(OutboxEvent.state == "sent"))).scalar_one())  # type: ignore[arg-type]


async def outbox_rate(config: MailConfig, folder: Path, count: int) -> float:
    db = await migrated(f"sqlite+aiosqlite:///{folder / 'drain.db'}")
    await _units_and_events(db, count)
    worker = await Worker.create(db, config)
    stop = asyncio.Event()
    start = time.perf_counter()
    task = asyncio.create_task(worker.run(stop))
    while await _count_sent(db) < count:
        await asyncio.sleep(0.1)
    elapsed = time.perf_counter() - start
    stop.set()
    await task
    await db.dispose()
    return count / elapsed


async def urgent_latency(config: MailConfig, folder: Path, backlog: int) -> tuple[float, int]:
    db = await migrated(f"sqlite+aiosqlite:///{folder / 'latency.db'}")
    await _units_and_events(db, backlog)
    worker = await Worker.create(db, config)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(1.0)
    [urgent] = await _units_and_events(db, 1, priority=3)
    start = time.perf_counter()
    while True:
        async with db.session() as s:
            event = await s.get(OutboxEvent, urgent)
        if event is not None and event.state == "sent":
            break
        await asyncio.sleep(0.01)
    latency = time.perf_counter() - start
    pending = backlog - await _count_sent(db)
    stop.set()
    await task
    await db.dispose()
    return latency, pending


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-mail-"))
    make_pki(folder, MAIL_FROM)
    port = free_port()
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(folder), str(port)], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"  # noqa: S101 - bench only
        config = MailConfig.zimbra("127.0.0.1", port=port, username=USERNAME, password=PASSWORD,
                                   ca_file=folder / "ca.pem", mail_from=MAIL_FROM, pool_size=args.connections,
                                   batch_size=args.batch, poll_interval_s=0.05, data_dir=folder,
                                   attach_pdf=False)
        templates = await TemplateSet.load()
        rendered = templates.render("arrival", {"number_notation": "12-TB/TU", "subject": "Về việc tổng kết"})
        msgs = [(f"cb{i}@so.vn", build_message(OutgoingMessage(
            f"e{i}", f"cb{i}@so.vn", message_id_for(f"e{i}", "x", "so.vn"), 0, rendered), MAIL_FROM, None))
            for i in range(args.messages)]
        raw = await raw_rate(config, msgs, args.connections)
        outbox = await outbox_rate(replace(config), folder, args.messages)
        latency, left = await urgent_latency(config, folder, args.backlog)
    finally:
        child.kill()
        child.wait()
    print(f"| measure | value |\n|---|---|\n| raw aiosmtplib, {args.connections} connections | {raw:.0f} msg/s |")
    print(f"| outbox worker (SQLite), {args.connections} connections | {outbox:.0f} msg/s ({outbox / raw:.0%} of raw) |")
    print(f"| urgent enqueue→accepted, {args.backlog} normal queued | {latency:.2f} s ({left} normal still queued) |")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(Path(sys.argv[2]), int(sys.argv[3]))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=20)
    asyncio.run(main(parser.parse_args()))
