"""The SMTP transport: aiosmtplib submission with TLS + AUTH, and a small pool.

Every aiosmtplib exception is translated here, into :mod:`service.mail.errors`.
One connection carries one transaction at a time; the pool holds ``pool_size``.

A transaction sends MAIL, RCPT and DATA through aiosmtplib's ``execute_command``
rather than its ``mail()``, ``rcpt()`` and ``data()``: those parse the address again and
run two regular expressions over the whole message on every call, about a fifth of the
client's CPU per message. Here an address is quoted once (the same quoting), and a
message built with CRLF line ends and no line starting with a dot (every notification)
goes out as it is; any other is normalised and dot-stuffed as ``data()`` would. A
refusal raises the exception ``mail()``/``rcpt()``/``data()`` would raise.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import aiosmtplib
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import normalize_message_line_endings

from .config import MailConfig
from .errors import MailConfigError, SmtpError, SmtpPermanentError, SmtpTemporaryError

__all__ = ["RecipientResult", "Reply", "SmtpConnection", "SmtpPool", "make_tls_context", "on_the_wire"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reply:
    """One server answer, for the transcript (``mail test``) and the attempt log."""

    stage: str
    code: int
    message: str


class RecipientResult(NamedTuple):
    """What the server said about one recipient of one transaction."""

    address: str
    code: int
    reply: str
    stage: str

    @property
    def accepted(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return self.code >= 500


def make_tls_context(config: MailConfig) -> ssl.SSLContext:
    """A verifying client context, trusting ``ca_file`` if given (blocking: reads files)."""
    cafile = str(config.ca_file) if config.ca_file else None
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise MailConfigError(f"cannot load the SMTP CA bundle {cafile}: {exc}") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _translate(exc: BaseException, stage: str) -> SmtpError:
    """The one table from aiosmtplib's exceptions to ours."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        kind = SmtpPermanentError if exc.code >= 500 else SmtpTemporaryError
        return kind(exc.code, exc.message, stage=stage)
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError):
        return SmtpTemporaryError(0, f"connection lost: {exc}", stage=stage)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | asyncio.TimeoutError):
        return SmtpTemporaryError(0, f"timeout: {exc}", stage=stage)
    if isinstance(exc, OSError):
        return SmtpTemporaryError(0, f"network error: {exc}", stage=stage)
    # Other SMTPException: e.g. STARTTLS or AUTH not offered by the server.
    return SmtpPermanentError(0, str(exc), stage=stage)


_TRANSLATED = (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError)


class SmtpConnection:
    """One submission session: connect, EHLO, STARTTLS, EHLO, AUTH, then transactions."""

    def __init__(self, config: MailConfig, tls: ssl.SSLContext | None, transcript: list[Reply] | None = None):
        self._config = config
        self._tls = tls
        self._transcript = transcript
        self._smtp: aiosmtplib.SMTP | None = None
        self._last_used = 0.0

    @property
    def usable(self) -> bool:
        idle = time.monotonic() - self._last_used
        return self._smtp is not None and self._smtp.is_connected and idle < self._config.idle_reconnect_s

    async def open(self) -> None:
        """Raises SmtpError (temporary or permanent) or MailConfigError."""
        cfg = self._config
        if not cfg.host:
            raise MailConfigError("DOCEX_SMTP_HOST is not set")
        self._smtp = aiosmtplib.SMTP(
            hostname=cfg.host, port=cfg.port, use_tls=cfg.security == "tls", start_tls=False,
            tls_context=self._tls, timeout=cfg.timeout_s, local_hostname=cfg.local_hostname,
        )
        try:
            await self._handshake(self._smtp)
        except (SmtpError, MailConfigError):
            self.abort()
            raise
        self._last_used = time.monotonic()

    async def _handshake(self, smtp: aiosmtplib.SMTP) -> None:
        await self._step("CONNECT", smtp.connect())
        await self._step("EHLO", smtp.ehlo())
        if self._config.security == "starttls":
            await self._step("STARTTLS", smtp.starttls(tls_context=self._tls))
            await self._step("EHLO", smtp.ehlo())
        await self._login()

    async def _login(self) -> None:
        cfg, smtp = self._config, self._smtp
        if smtp is None or not cfg.username:
            if cfg.require_auth:
                raise MailConfigError("the relay requires AUTH: set DOCEX_SMTP_USERNAME/PASSWORD")
            return
        if not smtp.supports_extension("auth"):
            raise SmtpPermanentError(0, "server offers no AUTH (is TLS in force?)", stage="AUTH")
        await self._step("AUTH", smtp.login(cfg.username, cfg.password))

    async def _step(self, stage: str, coro: Awaitable[aiosmtplib.SMTPResponse]) -> aiosmtplib.SMTPResponse:
        try:
            response = await coro
        except _TRANSLATED as exc:
            error = _translate(exc, stage)
            self._record(stage, error.smtp_code, error.reply)
            if error.smtp_code in (0, 421):
                self.abort()
            raise error from exc
        self._record(stage, response.code, response.message)
        return response

    def _record(self, stage: str, code: int, message: str) -> None:
        if self._transcript is not None:
            self._transcript.append(Reply(stage, code, message))

    async def transaction(self, sender: str, recipients: list[str], raw: bytes) -> list[RecipientResult]:
        """MAIL, RCPT per address, DATA. Raises SmtpError when the whole message failed."""
        smtp = self._require()
        self._last_used = time.monotonic()
        options = [b"SIZE=%d" % len(raw)] if smtp.supports_extension("size") else []
        await self._command("MAIL", _mail(smtp, sender, options))
        results = [await self._rcpt(smtp, address) for address in recipients]
        if not any(r.accepted for r in results):
            await self._command("RSET", smtp.rset())
            return results
        data = await self._step("DATA", _data(smtp, raw))
        self._last_used = time.monotonic()
        # Every accepted recipient's last word is the DATA reply.
        return [RecipientResult(r.address, data.code, data.message, "DATA") if r.accepted else r for r in results]

    async def _command(self, stage: str, coro: Awaitable[aiosmtplib.SMTPResponse]) -> None:
        try:
            await self._step(stage, coro)
        except SmtpError as error:
            if error.smtp_code == 421:
                self.abort()
            elif self.usable:
                await self._reset_quietly()
            raise

    async def _rcpt(self, smtp: aiosmtplib.SMTP, address: str) -> RecipientResult:
        try:
            response = await _rcpt(smtp, address)
        except aiosmtplib.SMTPRecipientRefused as exc:
            self._record("RCPT", exc.code, exc.message)
            return RecipientResult(address, exc.code, exc.message, "RCPT")
        except _TRANSLATED as exc:
            error = _translate(exc, "RCPT")
            self.abort()
            raise error from exc
        self._record("RCPT", response.code, response.message)
        return RecipientResult(address, response.code, response.message, "RCPT")

    async def _reset_quietly(self) -> None:
        try:
            await self._require().rset()
        except _TRANSLATED as exc:
            log.info("RSET after a refusal failed (%s); dropping the connection", exc)
            self.abort()

    def _require(self) -> aiosmtplib.SMTP:
        if self._smtp is None or not self._smtp.is_connected:
            raise SmtpTemporaryError(0, "not connected", stage="MAIL")
        return self._smtp

    async def quit(self) -> None:
        if self._smtp is not None and self._smtp.is_connected:
            try:
                await self._step("QUIT", self._smtp.quit())
            except SmtpError as error:
                log.info("QUIT failed: %s", error)
        self.abort()

    def abort(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
        self._smtp = None


@functools.lru_cache(maxsize=4096)
def _path(address: str) -> bytes:
    """``<address>`` as MAIL and RCPT carry it: aiosmtplib's quoting, parsed once per address."""
    return quote_address(address).encode("ascii")


async def _mail(smtp: aiosmtplib.SMTP, sender: str, options: list[bytes]) -> aiosmtplib.SMTPResponse:
    response = await smtp.execute_command(b"MAIL", b"FROM:" + _path(sender), *options)
    if response.code != 250:
        raise aiosmtplib.SMTPSenderRefused(response.code, response.message, sender)
    return response


async def _rcpt(smtp: aiosmtplib.SMTP, address: str) -> aiosmtplib.SMTPResponse:
    response = await smtp.execute_command(b"RCPT", b"TO:" + _path(address))
    if response.code not in (250, 251):
        raise aiosmtplib.SMTPRecipientRefused(response.code, response.message, address)
    return response


async def _data(smtp: aiosmtplib.SMTP, raw: bytes) -> aiosmtplib.SMTPResponse:
    response = await smtp.execute_command(b"DATA")
    if response.code != 354:
        raise aiosmtplib.SMTPDataError(response.code, response.message)
    protocol = smtp.protocol
    try:
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        protocol.write(on_the_wire(raw))
        response = await protocol.read_response(timeout=smtp.timeout)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
        smtp.close()  # the reply may still come: the session cannot be trusted any more
        raise
    if response.code != 250:
        raise aiosmtplib.SMTPDataError(response.code, response.message)
    return response


_LEADING_DOT = re.compile(rb"(?m)^\.")


def on_the_wire(raw: bytes) -> bytes:
    """The message as DATA sends it: CRLF line ends, leading dots doubled, then the ``.`` line.

    Each step runs only when the message needs it (one scan each to find out).
    """
    crlf = raw.count(b"\r\n")
    if raw.count(b"\n") != crlf or raw.count(b"\r") != crlf or not raw.endswith(b"\r\n"):
        raw = normalize_message_line_endings(raw)
    if raw.startswith(b".") or b"\n." in raw:
        raw = _LEADING_DOT.sub(b"..", raw)
    return raw + b".\r\n"


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SmtpPool:
    """Up to ``pool_size`` reused sessions; reconnects after 421, idle close or loss."""

    def __init__(self, config: MailConfig) -> None:
        self._config = config
        self._tls: ssl.SSLContext | None = None
        self._idle: deque[SmtpConnection] = deque()  # the longest idle first: every session stays warm
        self._slots = asyncio.Semaphore(config.pool_size)

    async def send(self, sender: str, recipients: list[str], raw: bytes) -> list[RecipientResult]:
        """One message to many recipients, split into transactions of ``max_recipients``.

        Raises SmtpError when a whole transaction failed (connect, MAIL FROM, DATA).
        """
        if len(raw) > self._config.max_message_bytes:
            raise SmtpPermanentError(552, "message exceeds the relay's size limit", stage="MAIL")
        if len(recipients) <= self._config.max_recipients:
            return await self._send_chunk(sender, recipients, raw)
        results: list[RecipientResult] = []
        for chunk in _chunks(recipients, self._config.max_recipients):
            results += await self._send_chunk(sender, chunk, raw)
        return results

    async def _send_chunk(self, sender: str, recipients: list[str], raw: bytes) -> list[RecipientResult]:
        async with self._slots:
            conn, reused = await self._acquire()
            try:
                results = await conn.transaction(sender, recipients, raw)
            except SmtpError as error:
                if not (reused and error.stage == "MAIL" and error.smtp_code in (0, 421)):
                    raise
                # A pooled session the server closed meanwhile: nothing was sent yet.
                conn.abort()
                conn, _ = await self._acquire(fresh=True)
                results = await conn.transaction(sender, recipients, raw)
            finally:
                self._release(conn)
            return results

    async def _acquire(self, fresh: bool = False) -> tuple[SmtpConnection, bool]:
        while not fresh and self._idle:
            conn = self._idle.popleft()
            if conn.usable:
                return conn, True
            await conn.quit()
        if self._tls is None and self._config.security != "none":
            self._tls = await asyncio.to_thread(make_tls_context, self._config)
        conn = SmtpConnection(self._config, self._tls)
        await conn.open()
        return conn, False

    def _release(self, conn: SmtpConnection) -> None:
        if conn.usable:
            self._idle.append(conn)

    async def close(self) -> None:
        while self._idle:
            await self._idle.popleft().quit()
