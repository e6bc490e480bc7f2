"""Reading a unit tree from JSON or CSV, and writing it back.

Everything read from a file is checked here, strictly: a wrong type, an overlong
field or an absurd nesting is refused with InvalidTreeError naming the unit or
line, never passed on to fail later as a 500.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from dataclasses import dataclass
from typing import Any

from service.text import blank, echo, nfc, plain_text
from service.units.errors import InvalidTreeError

__all__ = ["MAX_LEVELS", "MAX_MAILBOXES", "UnitSpec", "check_label", "check_mailbox", "check_mailboxes",
           "code_key", "dump_csv", "dump_json", "not_a_code", "parse_tree", "valid_code"]

# QCVN 102 (V1V2V3.Z1Z2.Y1Y2.MX1X2) is a special case of Decision 20/2020's
# form: up to 35 characters, dot-separated groups of digits and capitals.
_CODE = re.compile(r"^[0-9A-Z]+(\.[0-9A-Z]+)*$")
CSV_COLUMNS = ("code", "name", "level", "parent_code", "mailboxes", "has_seal")
# A real organisation is a handful of levels deep (province → commune → branch);
# the limit keeps deep input from exhausting the stack or the 4000-character path.
MAX_LEVELS = 20
_LIMITS = {"name": 300, "level": 100}  # the column sizes of Unit
_MAILBOX = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+$")
_MAILBOX_MAX = 320  # RFC 5321: 64 + 1 + 255
MAX_MAILBOXES = 20  # every arrival is mailed to each: a file is held to the bound a PATCH is
_NUMBER_MAX_DIGITS = 30  # nothing in a unit file is a number; longer ones only cost CPU
_YES = frozenset({"true", "yes", "1", "có"})
_NO = frozenset({"false", "no", "0", "không", ""})  # an empty cell: no seal, as when the key is absent
_FORMULA_START = ("=", "+", "-", "@")  # what makes a spreadsheet cell a formula
# Excel writes CSV with the system's list separator: ";" under Vietnamese regional settings,
# tab for "Unicode text" (which is UTF-16).
_SEPARATORS = (",", ";", "\t")


def valid_code(code: str) -> bool:
    return len(code) <= 35 and bool(_CODE.match(code))


def code_key(text: str) -> str:
    """A typed code as codes are stored: NFC, trimmed, ASCII letters in capitals. Any other
    letter is left as typed, so the code is refused or matches no unit instead of becoming
    another code (``str.upper`` turns ß into SS, ﬀ into FF, ı into I)."""
    key = nfc(text)
    return key.upper() if key.isascii() else key


def not_a_code(code: str, what: str = "unit code") -> InvalidTreeError:
    """The refusal of a code that is no identifier code, saying what a code is made of."""
    why = "it has a character outside A–Z, 0–9 and the dot (a letter with an accent?); " if not code.isascii() else ""
    return InvalidTreeError(f"{what} {echo(code)!r} is not an identifier code ({why}e.g. 000.00.00.H49: digits "
                            "and capitals A–Z in dot-separated groups, at most 35 characters)")


@dataclass
class UnitSpec:
    """One unit as a file describes it (parent by code). ``mailboxes`` and ``has_seal`` are
    None when the file leaves them out: a new unit has none and no seal, an existing one
    keeps its own. ``keeps_parent`` says the file left the parent out (no ``parent_code``
    column or key, and no nesting): an existing unit stays where it is, a new one is a
    root. An empty or null ``parent_code`` does say something: the unit is a root."""

    code: str
    name: str
    level: str
    parent_code: str | None = None
    mailboxes: list[str] | None = None
    has_seal: bool | None = None
    keeps_parent: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The unit as the API and a JSON file show it."""
        return {"code": self.code, "name": self.name, "level": self.level, "parent_code": self.parent_code,
                "mailboxes": self.mailboxes, "has_seal": self.has_seal}


def parse_tree(data: bytes, filename: str = "") -> list[UnitSpec]:
    """Units from a JSON (flat list or nested ``children``) or CSV file.

    ``filename`` ending in .csv or .json says which (the API names the type a body was sent
    as); otherwise the content does: JSON starts with ``[`` or ``{``. A CSV's columns may be
    separated by commas, semicolons or tabs, and it may be UTF-8 or UTF-16 with its mark.
    Raises InvalidTreeError naming the first bad unit (JSON) or line (CSV).
    """
    text = _decoded(data)
    name = filename.lower()
    json_like = text.lstrip()[:1] in ("[", "{")
    if name.endswith(".csv") or (not name.endswith(".json") and not json_like):
        specs = _from_csv(text)
    else:
        specs = _from_json(text, json_like)
    _check_codes(specs)
    return specs


def _decoded(data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Excel's "Unicode text"
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise InvalidTreeError("the unit file starts as UTF-16 text but is not; save it again as "
                                   "CSV UTF-8 (in Excel: Save As → CSV UTF-8)") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidTreeError(f"the unit file is not UTF-8 text (byte {exc.start + 1} is not); save it as "
                               "CSV UTF-8 (in Excel: Save As → CSV UTF-8) or as JSON in UTF-8") from exc


def _from_csv(text: str) -> list[UnitSpec]:
    first = text.split("\n", 1)[0]
    separator = _separator(first)
    reader = csv.DictReader(io.StringIO(text), delimiter=separator)
    try:
        names = [(n or "").strip().lower() for n in reader.fieldnames or ()]
        if not {"code", "name"} <= set(names):
            raise InvalidTreeError(
                f"the CSV's first line must name its columns: {','.join(CSV_COLUMNS)} (separated by commas, "
                f"semicolons or tabs); the file's first line is {echo(first.strip())!r}")
        reader.fieldnames = names
        return [_from_row(row, reader.line_num) for row in reader]
    except csv.Error as exc:  # e.g. a field over the csv module's 131072-character limit
        # line_num counts the lines of the rows read whole: the bad row starts on the next.
        raise InvalidTreeError(f"line {reader.line_num + 1}: the CSV cannot be read ({exc})") from exc


def _separator(header: str) -> str:
    """The separator that makes ``header`` name the columns ``code`` and ``name`` (a comma if none does)."""
    for separator in _SEPARATORS:
        if {"code", "name"} <= {cell.strip().strip('"').lower() for cell in header.split(separator)}:
            return separator
    return ","


def _from_row(row: dict[str | None, Any], line: int) -> UnitSpec:
    where = f"line {line}"
    item: dict[str, Any] = {k: _live(row.get(k) or "") for k in CSV_COLUMNS}
    # A column the file does not have (None) leaves the unit's own value; an empty cell clears it.
    item["mailboxes"] = None if row.get("mailboxes") is None else [
        m for m in re.split(r"[,;]", item["mailboxes"]) if m.strip()]
    item["has_seal"] = None if row.get("has_seal") is None else _csv_bool(item["has_seal"], where)
    if row.get("parent_code") is None:
        del item["parent_code"]
    return _spec(item, None, where)


def _csv_bool(value: str, where: str) -> bool:
    word = nfc(value).lower()
    if word in _YES or word in _NO:
        return word in _YES
    raise InvalidTreeError(f"{where}: has_seal {echo(value)!r} is neither yes nor no "
                           "(write true/false, yes/no, 1/0 or có/không)")


def _from_json(text: str, json_like: bool) -> list[UnitSpec]:
    try:
        doc = json.loads(text, parse_int=_json_int)
    except json.JSONDecodeError as exc:
        hint = "" if json_like else ("; a JSON unit file starts with [ or {: if this is a CSV file, send it as "
                                     "text/csv (or name the file .csv)")
        raise InvalidTreeError(f"the unit file is not valid JSON: {exc.msg} at line {exc.lineno}{hint}") from exc
    except RecursionError as exc:  # the C decoder's own guard: nothing is left half-done
        raise InvalidTreeError(
            f"the unit file is nested too deeply; a unit tree has at most {MAX_LEVELS} levels") from exc
    items = doc.get("units", []) if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise InvalidTreeError("the unit file must hold a list of units (or {'units': [...]})")
    return _flatten(items)


def _json_int(digits: str) -> int:
    # Python refuses to convert more than 4300 digits with a ValueError; refuse sooner, and clearly.
    if len(digits) > _NUMBER_MAX_DIGITS:
        raise InvalidTreeError(f"the unit file holds a number of {len(digits)} digits; "
                               "write codes and names as text in quotes")
    return int(digits)


def _flatten(items: list[Any]) -> list[UnitSpec]:
    """Units in file order, each before its ``children``; a loop, not recursion,
    so no nesting reaches Python's recursion limit."""
    out: list[UnitSpec] = []
    todo: list[tuple[Any, str | None, int]] = [(item, None, 1) for item in reversed(items)]
    while todo:
        item, parent_code, level = todo.pop()
        where = _where(item, len(out) + 1)
        if not isinstance(item, dict):
            raise InvalidTreeError(f"{where} is not an object like {{\"code\": …, \"name\": …, \"level\": …}}")
        if level > MAX_LEVELS:
            raise InvalidTreeError(f"{where} is nested {level} levels deep; a unit tree has at most {MAX_LEVELS}")
        spec = _spec(item, parent_code, where)
        out.append(spec)
        todo.extend((child, spec.code, level + 1) for child in reversed(_children(item, where)))
    return out


def _where(item: Any, number: int) -> str:
    code = item.get("code") if isinstance(item, dict) else None
    return f"unit {number} ({echo(code)})" if isinstance(code, str) and code.strip() else f"unit {number}"


def _children(item: dict[str, Any], where: str) -> list[Any]:
    children = item.get("children")
    if children is None:
        return []
    if not isinstance(children, list):
        raise InvalidTreeError(f"{where}: 'children' must be a list of units")
    return children


def _spec(item: dict[str, Any], parent_code: str | None, where: str) -> UnitSpec:
    missing = [k for k in ("code", "name", "level") if _blank(item.get(k))]
    if missing:
        raise InvalidTreeError(f"{where}: missing {', '.join(missing)}")
    return UnitSpec(
        code=code_key(_text(item, "code", where)),
        name=_text(item, "name", where),
        level=_text(item, "level", where),
        parent_code=_parent_code(item, where) or parent_code,
        # Left out (or null): the unit keeps what it has.
        mailboxes=None if item.get("mailboxes") is None else _mailboxes(item["mailboxes"], where),
        has_seal=None if item.get("has_seal") is None else _json_bool(item["has_seal"], where),
        keeps_parent=parent_code is None and "parent_code" not in item,
    )


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and blank(value))


def _text(item: dict[str, Any], key: str, where: str) -> str:
    value = item[key]
    if not isinstance(value, str):
        raise InvalidTreeError(f"{where}: '{key}' must be text in quotes")
    text = _plain(nfc(value), f"{where}: '{key}'")
    limit = _LIMITS.get(key)
    if limit is not None and len(text) > limit:
        raise InvalidTreeError(f"{where}: '{key}' is {len(text)} characters long; at most {limit}")
    return text


def check_label(value: str, key: str, what: str) -> str:
    """A unit's name or level as stored: NFC, plain text, not blank, within its column."""
    if _blank(value):
        raise InvalidTreeError(f"{what}: the {key} cannot be blank")
    return _text({key: value}, key, what)


def _plain(text: str, what: str) -> str:
    try:
        return plain_text(text)
    except ValueError as exc:
        raise InvalidTreeError(f"{what}: {exc}") from exc


def _parent_code(item: dict[str, Any], where: str) -> str | None:
    value = item.get("parent_code")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidTreeError(f"{where}: 'parent_code' must be a unit code in quotes")
    code = code_key(value)
    if code and not valid_code(code):
        raise not_a_code(code, f"{where}: parent_code")
    return code or None


def _mailboxes(value: Any, where: str) -> list[str]:
    boxes = [value] if isinstance(value, str) else value
    if not isinstance(boxes, list) or not all(isinstance(m, str) for m in boxes):
        raise InvalidTreeError(f"{where}: 'mailboxes' must be a list of addresses")
    return check_mailboxes(boxes, where)


def check_mailboxes(addresses: list[str], where: str) -> list[str]:
    """A unit's mailboxes as stored: each checked, each once (the first spelling of addresses
    that differ only in case: the mail gateway would write to both), at most MAX_MAILBOXES.
    Raises InvalidTreeError."""
    kept: dict[str, str] = {}
    for address in addresses:
        checked = check_mailbox(address, where)
        kept.setdefault(checked.lower(), checked)
    if len(kept) > MAX_MAILBOXES:
        raise InvalidTreeError(f"{where} has {len(kept)} mailboxes; a unit has at most {MAX_MAILBOXES} (every "
                               "arrival is mailed to each): keep the addresses the unit reads")
    return list(kept.values())


def check_mailbox(address: str, where: str) -> str:
    """One mailbox as stored: an address the mail gateway can write into a header.
    Raises InvalidTreeError."""
    address = _plain(nfc(address), f"{where}: a mailbox")
    if len(address) > _MAILBOX_MAX or not _MAILBOX.match(address):
        raise InvalidTreeError(f"{where}: mailbox {echo(address)!r} is not an e-mail address")
    if not address.isascii():
        raise InvalidTreeError(f"{where}: mailbox {echo(address)!r} has letters outside ASCII, which the mail "
                               "gateway cannot address; write the unit's address as the mail system knows it "
                               "(e.g. vanthu@…, with no accents)")
    return address


def _json_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):  # "no" and 0 would read as true and false by accident
        raise InvalidTreeError(f"{where}: 'has_seal' must be true or false (without quotes)")
    return value


def _check_codes(specs: list[UnitSpec]) -> None:
    seen: set[str] = set()
    for spec in specs:
        if not valid_code(spec.code):
            raise not_a_code(spec.code)
        if spec.code in seen:
            raise InvalidTreeError(f"unit code {spec.code} appears twice in the file")
        seen.add(spec.code)


def dump_json(specs: list[UnitSpec]) -> str:
    return json.dumps({"units": [s.as_dict() for s in specs]}, ensure_ascii=False, indent=2)


def dump_csv(specs: list[UnitSpec]) -> str:
    """The tree as a spreadsheet opens it: a UTF-8 byte-order mark, without which Excel reads
    Vietnamese as Windows-1252, and no cell a spreadsheet would run as a formula."""
    buf = io.StringIO()
    buf.write("\ufeff")
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for s in specs:
        writer.writerow([s.code, _inert(s.name), _inert(s.level), s.parent_code or "",
                         _inert(";".join(s.mailboxes or ())), str(bool(s.has_seal)).lower()])
    return buf.getvalue()


def _inert(cell: str) -> str:
    # A name such as =HYPERLINK(…) would run in the spreadsheet of whoever opens the export.
    # The quote that stops it is the spreadsheets' own text marker; _live takes it off on import.
    # A value that itself starts with quotes before a formula character gets one more, so
    # taking one off gives it back as it was.
    return "'" + cell if _guarded(cell) else cell


def _live(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and _guarded(cell[1:]) else cell


def _guarded(cell: str) -> bool:
    """Whether the export puts a quote before ``cell``: a formula character after any quotes."""
    return cell.lstrip("'").startswith(_FORMULA_START)
