"""The transport's own MAIL/RCPT/DATA: the bytes and the refusals aiosmtplib's methods would give."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

from service.mail import SmtpConnection
from service.mail.errors import SmtpError, SmtpPermanentError, SmtpTemporaryError
from service.mail.smtp import make_tls_context, on_the_wire

from .conftest import MAIL_FROM, mail_config
from .pki import Pki
from .smtpserver import SubmissionServer

pytestmark = pytest.mark.asyncio

MESSAGES = [
    b"Subject: CRLF\r\n\r\nbody\r\n",
    b"Subject: bare LF\n\nline one\nline two\n",
    b"Subject: bare CR\r\rold Mac line\r",
    b"Subject: mixed\r\n\nsecond\rthird\r\n",
    b".starts with a dot\r\nthen\r\n",
    b"Subject: dots\r\n\r\n.one\r\n..two\n.\r\nend",
    b"no final line end",
    b"",
]


@pytest.mark.parametrize("raw", MESSAGES)
async def test_data_sends_the_bytes_aiosmtplib_data_would_send(raw: bytes) -> None:
    assert on_the_wire(raw) == PERIOD_REGEX.sub(b"..", normalize_message_line_endings(raw)) + b".\r\n"


async def test_a_crlf_message_without_leading_dots_goes_out_as_built() -> None:
    raw = b"Subject: x\r\n\r\nline\r\n"
    assert on_the_wire(raw) == raw + b".\r\n"


async def _connection(server: SubmissionServer, pki: Pki, tmp_path: Path) -> SmtpConnection:
    config = mail_config(server, pki, tmp_path)
    conn = SmtpConnection(config, make_tls_context(config))
    await conn.open()
    return conn


async def test_dot_lines_and_bare_line_feeds_arrive_as_written(smtp_server: SubmissionServer, pki: Pki,
                                                               tmp_path: Path) -> None:
    conn = await _connection(smtp_server, pki, tmp_path)
    try:
        [result] = await conn.transaction(MAIL_FROM, ["cb1@so.vn"], b"Subject: dots\r\n\r\n.one\n..two\r\n.\r\nend")
    finally:
        await conn.quit()
    assert result.accepted
    [received] = smtp_server.handler.messages
    assert received.rcpt_tos == ["cb1@so.vn"]
    assert received.raw == b"Subject: dots\r\n\r\n.one\r\n..two\r\n.\r\nend\r\n"


@pytest.mark.parametrize(("reply", "error"), [("554 5.7.1 Rejected by policy", SmtpPermanentError),
                                              ("451 4.3.0 Try again later", SmtpTemporaryError)])
async def test_a_refusal_at_the_end_of_data_is_an_error_of_that_stage_and_the_session_goes_on(
    smtp_server: SubmissionServer, pki: Pki, tmp_path: Path, reply: str, error: type[SmtpError]
) -> None:
    smtp_server.handler.data_reply = reply
    conn = await _connection(smtp_server, pki, tmp_path)
    try:
        with pytest.raises(error) as refused:
            await conn.transaction(MAIL_FROM, ["cb1@so.vn"], b"Subject: x\r\n\r\nbody\r\n")
        assert (refused.value.smtp_code, refused.value.stage) == (int(reply[:3]), "DATA")
        assert reply[4:] in refused.value.reply
        smtp_server.handler.data_reply = ""
        [result] = await conn.transaction(MAIL_FROM, ["cb2@so.vn"], b"Subject: y\r\n\r\nbody\r\n")
    finally:
        await conn.quit()
    assert result.accepted
    assert [m.rcpt_tos for m in smtp_server.handler.messages] == [["cb2@so.vn"]]


async def test_a_refused_recipient_is_reported_and_the_others_still_get_the_message(
    smtp_server: SubmissionServer, pki: Pki, tmp_path: Path
) -> None:
    smtp_server.handler.rcpt_replies = {"sai@xa.vn": "550 5.1.1 User unknown"}
    conn = await _connection(smtp_server, pki, tmp_path)
    try:
        results = await conn.transaction(MAIL_FROM, ["ok@xa.vn", "sai@xa.vn"], b"Subject: x\r\n\r\nbody\r\n")
    finally:
        await conn.quit()
    assert [(r.address, r.code, r.stage) for r in results] == [("ok@xa.vn", 250, "DATA"), ("sai@xa.vn", 550, "RCPT")]
    assert [m.rcpt_tos for m in smtp_server.handler.messages] == [["ok@xa.vn"]]
