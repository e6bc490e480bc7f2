"""Building the notification messages: headers, text + HTML, attachment, S/MIME."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import time
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote
from zoneinfo import ZoneInfo

from service.storage.types import utcnow
from service.units import InvalidTreeError, check_mailbox

from .rendering import Rendered
from .smime import SmimeSigner

__all__ = [
    "URGENCY_WORDS",
    "Attachment",
    "OutgoingMessage",
    "build_message",
    "fits_attachment",
    "message_id_for",
    "subject_with_urgency",
    "unaddressable",
]

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
URGENCY_WORDS = {0: "Thường", 1: "Khẩn", 2: "Thượng khẩn", 3: "Hỏa tốc"}
_FROM_NAME = "Hệ thống trao đổi văn bản"
# Text parts, headers and MIME overhead around a base64 attachment.
_OVERHEAD_BYTES = 64_000


@dataclass(frozen=True, slots=True)
class Attachment:
    path: Path
    filename: str
    size: int


class OutgoingMessage(NamedTuple):
    """What to build for one (event, address)."""

    event_id: str
    address: str
    message_id: str
    priority: int
    rendered: Rendered
    attachment: Attachment | None = None


def message_id_for(event_id: str, address: str, domain: str) -> str:
    """Deterministic per (event, address): a resend carries the same Message-ID."""
    digest = hashlib.sha256(f"{event_id}\n{address.strip().lower()}".encode()).hexdigest()[:24]
    return f"<{event_id}.{digest}@{domain}>"


def subject_with_urgency(subject: str, priority: int) -> str:
    """Urgent notifications lead with the urgency word: ``HỎA TỐC: …``."""
    if priority <= 0:
        return subject
    return f"{URGENCY_WORDS[min(priority, 3)].upper()}: {subject}"


def unaddressable(address: str) -> str:
    """Why no message can name ``address`` (a mailbox stored before units' mailboxes were
    checked: a line break, accented letters), or "" when it can. Failed at once, not retried."""
    try:
        check_mailbox(address, "the unit")
    except InvalidTreeError as exc:
        return f"{exc.detail}; correct the unit's mailboxes"
    return ""


def fits_attachment(size: int, max_message_bytes: int) -> bool:
    """Whether a file of ``size`` bytes, base64-encoded, keeps the message under the limit."""
    encoded = (size + 2) // 3 * 4
    return encoded + encoded // 76 * 2 + _OVERHEAD_BYTES <= max_message_bytes


def build_message(
    out: OutgoingMessage, mail_from: str, signer: SmimeSigner | None, *, with_attachment: bool = True
) -> bytes:
    """The exact bytes to send (CRLF, 7-bit). Blocking when attaching: call in a thread.

    The MIME structure is written directly: the stdlib's header refolding costs
    ~15 ms a message, more than the SMTP exchange itself.
    """
    entity = _entity(out, with_attachment)
    head = "".join(f"{name}: {value}\r\n" for name, value in _headers(out, mail_from).items()).encode("ascii")
    if signer is None:
        return head + b"MIME-Version: 1.0\r\n" + entity
    return head + signer.sign(entity)


@functools.lru_cache(maxsize=1024)
def _encoded(name: str, value: str) -> str:
    if value.isascii():
        return value
    return Header(value, "utf-8", header_name=name).encode(linesep="\r\n")


@functools.lru_cache(maxsize=16)
def _from_header(mail_from: str) -> str:
    return formataddr((_FROM_NAME, mail_from), charset="utf-8")


def _headers(out: OutgoingMessage, mail_from: str) -> dict[str, str]:
    headers: dict[str, str] = {
        "From": _from_header(mail_from),
        "To": out.address,
        "Subject": _encoded("Subject", subject_with_urgency(out.rendered.subject, out.priority)),
        "Date": _date_now(),
        "Message-ID": out.message_id,
        "Auto-Submitted": "auto-generated",
        "X-Docexchange-Event": out.event_id,
    }
    if out.priority >= 1:
        headers["Importance"] = "high"
        headers["X-Priority"] = "1"
    return headers


_date_memo: list[tuple[int, str]] = [(-1, "")]


def _date_now() -> str:
    """The Date header for now, Vietnam time; formatted once per second (it has whole seconds)."""
    second = int(time.time())
    memo = _date_memo[0]
    if memo[0] != second:
        memo = _date_memo[0] = (second, format_datetime(datetime.fromtimestamp(second, VN_TZ)))
    return memo[1]


def _boundary(out: OutgoingMessage, part: str) -> str:
    # Deterministic, and cannot occur in QP/base64 text ("=_" is never produced there).
    return f"=_{part}_{hashlib.sha256(out.message_id.encode()).hexdigest()[:20]}"


def _qp(text: str) -> bytes:
    return binascii.b2a_qp(text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8"), istext=True)


def _text_part(kind: str, text: str) -> bytes:
    return (f'Content-Type: text/{kind}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n").encode() + _qp(text)


def _multipart(subtype: str, boundary: str, parts: list[bytes]) -> bytes:
    sep = f"\r\n--{boundary}\r\n".encode()
    head = f'Content-Type: multipart/{subtype};\r\n boundary="{boundary}"\r\n\r\n'.encode()
    return head + sep.lstrip(b"\r\n") + sep.join(parts) + f"\r\n--{boundary}--\r\n".encode()


def _pdf_part(attachment: Attachment) -> bytes:
    data = base64.encodebytes(attachment.path.read_bytes()).replace(b"\n", b"\r\n")
    ascii_name = attachment.filename.encode("ascii", "replace").decode().replace('"', "")
    utf8_name = quote(attachment.filename, safe="")
    return (f'Content-Type: application/pdf; name="{ascii_name}"\r\n'
            "Content-Transfer-Encoding: base64\r\n"
            f"Content-Disposition: attachment; filename=\"{ascii_name}\";\r\n"
            f" filename*=utf-8''{utf8_name}\r\n\r\n").encode() + data


def _entity(out: OutgoingMessage, with_attachment: bool) -> bytes:
    body = _multipart("alternative", _boundary(out, "alt"), [
        _text_part("plain", out.rendered.text), _text_part("html", out.rendered.html)])
    if not (with_attachment and out.attachment is not None):
        return body
    return _multipart("mixed", _boundary(out, "mix"), [body, _pdf_part(out.attachment)])


def now_vn() -> datetime:
    return utcnow().astimezone(VN_TZ)
