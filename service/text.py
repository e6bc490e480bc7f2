"""Vietnamese text and Vietnam time: one place for normalising and showing."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta, timezone
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

__all__ = ["VN_TZ", "PlainText", "RequiredText", "blank", "echo", "first_control", "fold", "nfc", "plain_text",
           "search_key", "to_vn_iso", "without_controls"]

# Vietnam has kept UTC+07:00 without daylight saving since 1975.
VN_TZ = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")


def nfc(text: str) -> str:
    """The NFC form, with surrounding whitespace trimmed."""
    return unicodedata.normalize("NFC", text).strip()


# Control characters (Unicode's Cc: C0, DEL, C1) and halves of surrogate pairs, which JSON can
# carry ("\ud800") but no encoding can store; the second leaves tab and line breaks to text.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def first_control(text: str, *, breaks: bool = True) -> str | None:
    """The first control character of ``text`` (or half of a surrogate pair), if any; with
    ``breaks`` tab and line breaks are text, not control."""
    found = (_CONTROL_IN_TEXT if breaks else _CONTROL).search(text)
    return found.group() if found else None


def without_controls(text: str) -> str:
    """``text`` with each control character read as a space."""
    return _CONTROL.sub(" ", text)


def echo(text: str, limit: int = 60) -> str:
    """A caller's input to quote back in a message: cut short (a refusal must not repeat a
    megabyte), its control characters shown as �."""
    short = text if len(text) <= limit else text[:limit] + "…"
    return _CONTROL.sub("\N{REPLACEMENT CHARACTER}", short)


# Embeddings, overrides and isolates of the bidirectional algorithm: no Vietnamese text needs
# one, and U+202E shows "hợp-đồng\u202efdp.exe" as "hợp-đồngexe.pdf".
_DIRECTION = re.compile("[\u202a-\u202e\u2066-\u2069]")


def plain_text(text: str) -> str:
    """``text`` itself; raises ValueError if it holds a control character (a NUL, an escape)
    other than tab and line breaks, half of a surrogate pair, or a direction override. No
    name, number or note a person types holds one; PostgreSQL cannot store a NUL, a header
    built from such text (a mail's subject) would be broken, and an override disguises
    what follows it."""
    ch = first_control(text)
    if ch is not None:
        raise ValueError(f"the text holds the control character U+{ord(ch):04X}; remove it")
    if (found := _DIRECTION.search(text)) is not None:
        raise ValueError(f"the text holds the direction control character U+{ord(found.group()):04X}, which can "
                         "disguise the text after it; remove it")
    return text


def blank(text: str) -> bool:
    """Whether ``text`` shows nothing: only spaces and invisible format characters (U+200B…)."""
    return all(ch.isspace() or unicodedata.category(ch) == "Cf" for ch in text)


def nfc_first(value: object) -> object:
    """NFC, trimmed, before a request model checks a text's length: a limit counts the
    characters kept, and a required field is not filled by spaces."""
    return unicodedata.normalize("NFC", value).strip() if isinstance(value, str) else value


def _filled(text: str) -> str:
    if blank(text):
        raise ValueError("it cannot be blank: write the text itself")
    return text


# For request models: any text field a person fills in, and one that must be filled in.
PlainText = Annotated[str, BeforeValidator(nfc_first), AfterValidator(plain_text)]
RequiredText = Annotated[str, BeforeValidator(nfc_first), AfterValidator(plain_text), AfterValidator(_filled)]


def fold(text: str) -> str:
    """Lower case without diacritics: ``Kế hoạch Đảng`` → ``ke hoach dang``."""
    decomposed = unicodedata.normalize("NFD", text.casefold())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.replace("đ", "d").split())


def search_key(text: str) -> str:
    """Case-insensitive, NFC, whitespace-collapsed: for matching typed diacritics."""
    return " ".join(unicodedata.normalize("NFC", text.casefold()).split())


def to_vn_iso(moment: datetime | None) -> str | None:
    """ISO 8601 in Vietnam time, e.g. ``2026-11-22T11:05:00+07:00``."""
    if moment is None:
        return None
    return moment.astimezone(VN_TZ).isoformat(timespec="seconds")
