"""``docexchange mail …`` and ``docexchange worker``: operator commands of the relay.

Each subcommand sets ``func``: a function ``(args) -> int`` (exit status) that
runs its own event loop. The docexchange CLI calls ``args.func(args)``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from typing import Any

from service.documents.blobs import upgrade_layout
from service.plugins import freeze_loaded
from service.settings import Settings
from service.storage.db import Database, existing_database
from service.storage.types import utcnow

from .admin import Scope, list_notifications, retry_notification
from .config import MailConfig
from .errors import MailError
from .overdue import sweep_overdue
from .smtp import Reply, SmtpConnection, make_tls_context
from .worker import Worker

__all__ = ["add_commands"]

LoadSettings = Callable[[], Settings]


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], load_settings: LoadSettings) -> None:
    """Register ``mail test|list|retry|sweep-overdue`` and ``worker``."""
    mail = subparsers.add_parser("mail", help="the mail relay (Zimbra/Postfix)")
    sub = mail.add_subparsers(dest="mail_command", required=True)
    test = sub.add_parser("test", help="send one message and print every server answer")
    test.add_argument("address")
    test.set_defaults(func=lambda a: asyncio.run(_test(load_settings(), a.address)))
    listing = sub.add_parser("list", help="notifications not yet sent (or of one state)")
    listing.add_argument("--state", choices=["pending", "sending", "deferred", "sent", "failed", "cancelled"])
    listing.add_argument("--limit", type=_limit, default=50, metavar="N",
                         help=f"at most N notifications, newest first (1–{_LIMIT_MAX}; default 50)")
    listing.set_defaults(func=lambda a: asyncio.run(_list(load_settings(), a.state, a.limit)))
    retry = sub.add_parser("retry", help="send a deferred/failed notification again now")
    retry.add_argument("id")
    retry.set_defaults(func=lambda a: asyncio.run(_retry(load_settings(), a.id)))
    sweep = sub.add_parser("sweep-overdue", help="queue reminders for deliveries not registered in time")
    sweep.set_defaults(func=lambda a: asyncio.run(_sweep(load_settings())))
    worker = subparsers.add_parser("worker", help="run the mail worker until SIGTERM")
    worker.set_defaults(func=lambda a: on_fast_loop(run_worker(load_settings())))


_LIMIT_MAX = 10_000


def _limit(text: str) -> int:
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if not 1 <= limit <= _LIMIT_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 1 to {_LIMIT_MAX}")
    return limit


def on_fast_loop(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main`` on uvloop where it is installed (uvicorn[standard] brings it, and the API
    and its embedded worker run on it), else on asyncio's own loop. The relay spends most
    of its time in the event loop: uvloop's costs about a quarter less CPU per message."""
    try:
        import uvloop
    except ImportError:  # e.g. Windows
        return asyncio.run(main)
    return uvloop.run(main)


def _print_reply(reply: Reply) -> None:
    lines = reply.message.splitlines() or [""]
    for i, line in enumerate(lines):
        sep = "-" if i < len(lines) - 1 else " "
        print(f"{reply.stage:<9} {reply.code}{sep}{line}")


async def _test(settings: Settings, address: str) -> int:
    config = MailConfig.from_settings(settings)
    transcript: list[Reply] = []
    tls = await asyncio.to_thread(make_tls_context, config) if config.security != "none" else None
    conn = SmtpConnection(config, tls, transcript)
    print(f"relay {config.host}:{config.port} security={config.security} user={config.username or '-'}")
    status = 1
    try:
        await conn.open()
        results = await conn.transaction(config.sender, [address], _test_message(config, address))
        status = 0 if results and results[0].accepted else 1
        await conn.quit()
    except MailError as error:
        print(f"FAILED: {error}")
    finally:
        conn.abort()
        for reply in transcript:
            _print_reply(reply)
    print("OK: accepted by the relay" if status == 0 else "NOT DELIVERED")
    return status


def _test_message(config: MailConfig, address: str) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"], msg["To"] = config.mail_from, address
    msg["Subject"] = "Thư thử nghiệm của hệ thống trao đổi văn bản"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=config.message_id_domain)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content("Đây là thư thử nghiệm. Nếu bạn nhận được thư này, cấu hình gửi thư đã đúng.\n",
                    cte="quoted-printable")
    return msg.as_bytes()


async def _list(settings: Settings, state: str | None, limit: int) -> int:
    async with existing_database(settings.effective_database_url) as db, db.session() as session:
        rows = await list_notifications(session, Scope(None), state=state, limit=limit)
    for e in rows:
        print(f"{e.id}  {e.kind:<17} {e.state:<9} p{e.priority} tries={e.attempts} {e.last_error[:80]}")
    print(f"{len(rows)} notification(s)")
    return 0


async def _retry(settings: Settings, event_id: str) -> int:
    try:
        async with existing_database(settings.effective_database_url) as db, db.session() as session:
            event = await retry_notification(session, Scope(None), event_id)
            await session.commit()
    except MailError as error:
        print(f"cannot retry: {error}")
        return 1
    print(f"{event.id} queued again")
    return 0


async def _sweep(settings: Settings) -> int:
    async with existing_database(settings.effective_database_url) as db:
        created = await sweep_overdue(db, MailConfig.from_settings(settings), utcnow())
    print(f"{created} reminder(s) queued")
    return 0


async def run_worker(settings: Settings) -> int:
    """The worker as its own process: runs until SIGTERM or SIGINT."""
    upgrade_layout(settings.blob_dir)  # the files it attaches are where the API puts them
    db = Database(settings.effective_database_url, pool_size=settings.database_pool_size)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        worker = await Worker.create(db, MailConfig.from_settings(settings))
        freeze_loaded()
        await worker.run(stop)
    finally:
        await db.dispose()
    return 0
