"""A real SMTP submission server on loopback (aiosmtpd): STARTTLS + AUTH required.

Its behaviour is scripted per test: RCPT answers per address, dropping the
connection after DATA, size limit, refusing connections (server "down").
"""

from __future__ import annotations

import asyncio
import email
import socket
import ssl
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

USERNAME, PASSWORD = "docex@so.vn", "mật-khẩu-thử"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def authenticator(server: SMTPServer, session: Session, envelope: Envelope, mechanism: str,
                  auth_data: Any) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login == USERNAME.encode() and auth_data.password == PASSWORD.encode())
    # handled=False on failure: aiosmtpd answers 535 itself (else the client hangs).
    return AuthResult(success=ok, handled=False)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=default)  # type: ignore[return-value]


@dataclass
class Handler:
    messages: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)  # address -> reply (e.g. "450 4.2.2 …")
    drop_after_data: int = 0  # this many DATA commands are received, then the connection is cut
    data_delay_s: float = 0.0
    data_reply: str = ""  # answered at the end of DATA instead of 250 (the message is not kept)
    sessions: int = 0

    async def handle_RCPT(self, server: SMTPServer, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if self.data_delay_s:
            await asyncio.sleep(self.data_delay_s)
        if self.data_reply:
            return self.data_reply
        raw = bytes(envelope.original_content or b"")
        self.messages.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), raw))
        if self.drop_after_data > 0:
            self.drop_after_data -= 1
            server.transport.close()  # stored, but the client never hears 250
            return "250 2.0.0 never seen"
        return "250 2.0.0 Ok: queued"

    def message_ids(self) -> Counter[str]:
        return Counter(str(m.message["Message-ID"]) for m in self.messages)


class SubmissionServer:
    """Start/stop an aiosmtpd controller like Zimbra's 587: STARTTLS and AUTH required."""

    def __init__(self, cert: Path, key: Path, handler: Handler | None = None, data_size_limit: int = 33_554_432):
        self.port = free_port()
        self.handler = handler or Handler()
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(str(cert), str(key))
        self._controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, tls_context=tls, require_starttls=True,
            authenticator=authenticator, auth_required=True, data_size_limit=data_size_limit,
            server_hostname="localhost",
        )
        self.running = False

    def start(self) -> None:
        self._controller.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self._controller.stop()
            self.running = False
