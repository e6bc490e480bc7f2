"""Vietnamese text and Vietnam time: one place for normalising and showing."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta, timezone
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

__all__ = ["VN_TZ", "IsoDate", "PlainText", "RequiredText", "blank", "echo", "first_control", "fold", "iso_date",
           "nfc", "plain_text", "search_key", "search_keys", "to_vn_iso", "without_controls"]

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


# The five tone marks, decomposed: grave (huyền), acute (sắc), tilde (ngã), hook (hỏi), dot (nặng).
_TONES = "\u0300\u0301\u0303\u0309\u0323"

# In the open syllables of oa, oe and uy the old style writes the tone mark on the first
# vowel (hòa, khỏe, thúy, ủy) and the new style on the second (hoà, khoẻ, thuý, uỷ); both are
# in everyday use (Unikey has a setting for it). With anything after the pair (hoàng, hoặc,
# ngoài, huỳnh, khuỷu, quyết) both styles write it on the second vowel or later, and in
# "quý" the u belongs to the consonant qu. So the second vowel is the one placement that is
# right in every case: a mark on an o before a or e, or on a u before y, moves onto that
# letter when it bears no mark of its own (ă, â, ê are other letters: "hoặc" stays).
# No two words differ only in which of those two vowels carries the mark, so none are made one.
_ON_FIRST_VOWEL = re.compile(f"(o(?=[{_TONES}][ae])|u(?=[{_TONES}]y))([{_TONES}])(.)(?![\u0300-\u036f])")

# In qu and gi before a vowel the u and the i belong to the consonant, and the tone mark is
# the next vowel's: "qúa", "gìa", "gíup" are common slips for "quá", "già", "giúp". A mark on
# that u or i moves past the next vowel and its own hat, breve or horn (â, ă, ê, ô, ơ, ư)
# when that vowel bears no tone of its own. No word carries its tone on the u of qu or on
# the i of gi before a vowel ("gìn" and "gì" have none after it, and "nghĩa" is ngh + ĩa).
_ON_CONSONANT_VOWEL = re.compile(f"\\b(qu|gi)([{_TONES}])([aeiouy][\u0302\u0306\u031b]?)(?![\u0300-\u036f])")

# Ð (U+00D0, the Icelandic eth) stands in for Đ (U+0110) in text from legacy encodings.
_ETH = str.maketrans({"ð": "đ"})


def _letters(text: str) -> str:
    """Lower case, decomposed, with compatibility forms read as the letters they show
    (fullwidth ｋ as k, Ⅳ as iv, ﬁ as fi), the tone marks of oa, oe and uy on the second
    vowel and those of qu and gi on the vowel after them, eth read as đ, and without format
    characters (U+200B, U+00AD, U+FEFF…): they show as nothing, so a key holds what a reader
    sees."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold().translate(_ETH))
    visible = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Cf")
    return _ON_CONSONANT_VOWEL.sub(r"\1\3\2", _ON_FIRST_VOWEL.sub(r"\1\3\2", visible))


def fold(text: str) -> str:
    """Lower case without diacritics: ``Kế hoạch Đảng`` → ``ke hoach dang``."""
    stripped = "".join(ch for ch in _letters(text) if not unicodedata.combining(ch))
    return " ".join(stripped.replace("đ", "d").split())


def search_key(text: str) -> str:
    """Case-insensitive, NFC, whitespace-collapsed, one tone-mark placement: for matching typed
    diacritics (``Hòa Bình`` and ``hoà bình`` give ``hoà bình``)."""
    return " ".join(unicodedata.normalize("NFC", _letters(text)).split())


# An o or a u with its tone mark ending a query: the start of a word whose mark moves on.
_ENDS_ON_FIRST_VOWEL = re.compile(f"([ou])([{_TONES}])$")


def search_keys(text: str) -> list[str]:
    """The keys a query typed with diacritics is looked for by, each as part of a stored key:
    its ``search_key``, and when it ends in the first vowel of oa, oe or uy with the mark on it
    (``hò``, ``thú``) also those vowels with the mark moved on (``hoà``, ``hoè``, ``thuý``):
    it may be the start of a word whose key has the mark on the second vowel."""
    key = search_key(text)
    decomposed = unicodedata.normalize("NFD", key)
    if (found := _ENDS_ON_FIRST_VOWEL.search(decomposed)) is None:
        return [key]
    start, (vowel, tone) = decomposed[: found.start()], found.groups()
    return [key] + [unicodedata.normalize("NFC", f"{start}{vowel}{second}{tone}")
                    for second in ("ae" if vowel == "o" else "y")]


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_COMPACT_DATE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")
_DAY_FIRST_DATE = re.compile(r"([0-9]{1,2})[/.-]([0-9]{1,2})[/.-]([0-9]{4})")


def iso_date(value: object) -> object:
    """A calendar day written as YYYY-MM-DD, read as a ``date``; raises PydanticCustomError
    (a ValueError) for anything else: a compact ``20260101`` or a number of seconds would
    otherwise be read as a time since 1970, and a time of day is no day."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    text = value.strip() if isinstance(value, str) else str(value)
    if _ISO_DATE.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise PydanticCustomError("date_not_in_calendar", "{given} is not a day of the calendar (check "
                                      "the month and the day); write the date as YYYY-MM-DD, e.g. 2026-01-31",
                                      {"given": text}) from None
    if value is None or text == "":
        raise PydanticCustomError("date_missing", "the date is empty; write it as YYYY-MM-DD, e.g. 2026-01-31")
    meant = _meant_date(text)
    hint = f" (did you mean {meant}?)" if meant else ""
    raise PydanticCustomError("date_format", "write the date as YYYY-MM-DD, e.g. 2026-01-31, not '{given}'{hint}",
                              {"given": echo(text, 30), "hint": hint})


def _meant_date(text: str) -> str | None:
    """The ISO form of a date written 20260131 or 31/01/2026 (day first, as in Vietnam), if it is one."""
    if found := _COMPACT_DATE.fullmatch(text):
        year, month, day = found.groups()
    elif found := _DAY_FIRST_DATE.fullmatch(text):
        day, month, year = found.groups()
    else:
        return None
    try:
        return date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        return None


# For request models and query parameters: a day, as YYYY-MM-DD only.
IsoDate = Annotated[date, BeforeValidator(iso_date)]


def to_vn_iso(moment: datetime | None) -> str | None:
    """ISO 8601 in Vietnam time, e.g. ``2026-11-22T11:05:00+07:00``."""
    if moment is None:
        return None
    return moment.astimezone(VN_TZ).isoformat(timespec="seconds")
