"""Reading a unit tree from JSON or CSV, and writing it back."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

from service.text import nfc
from service.units.errors import InvalidTreeError

__all__ = ["UnitSpec", "dump_csv", "dump_json", "parse_tree", "valid_code"]

# QCVN 102 (V1V2V3.Z1Z2.Y1Y2.MX1X2) is a special case of Decision 20/2020's
# form: up to 35 characters, dot-separated groups of digits and capitals.
_CODE = re.compile(r"^[0-9A-Z]+(\.[0-9A-Z]+)*$")
CSV_COLUMNS = ("code", "name", "level", "parent_code", "mailboxes", "has_seal")


def valid_code(code: str) -> bool:
    return len(code) <= 35 and bool(_CODE.match(code))


@dataclass
class UnitSpec:
    """One unit as a file describes it (parent by code)."""

    code: str
    name: str
    level: str
    parent_code: str | None = None
    mailboxes: list[str] = field(default_factory=list)
    has_seal: bool = False


def parse_tree(data: bytes, filename: str) -> list[UnitSpec]:
    """Units from a JSON (flat list or nested ``children``) or CSV file.

    Raises InvalidTreeError naming the first bad row.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidTreeError("the unit file is not UTF-8 text") from exc
    if filename.lower().endswith(".csv"):
        specs = [_from_row(row, n) for n, row in enumerate(csv.DictReader(io.StringIO(text)), start=2)]
    else:
        specs = _from_json(text)
    _check_codes(specs)
    return specs


def _from_json(text: str) -> list[UnitSpec]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidTreeError(f"the unit file is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    items = doc.get("units", []) if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise InvalidTreeError("the unit file must hold a list of units (or {'units': [...]})")
    specs: list[UnitSpec] = []
    for item in items:
        _flatten(item, None, specs)
    return specs


def _flatten(item: Any, parent_code: str | None, out: list[UnitSpec]) -> None:
    if not isinstance(item, dict):
        raise InvalidTreeError(f"unit #{len(out) + 1} is not an object")
    spec = _spec(item, parent_code, f"unit #{len(out) + 1}")
    out.append(spec)
    for child in item.get("children") or []:
        _flatten(child, spec.code, out)


def _from_row(row: dict[str, Any], line: int) -> UnitSpec:
    item = dict(row)
    item["mailboxes"] = [m for m in (row.get("mailboxes") or "").replace(",", ";").split(";") if m.strip()]
    item["has_seal"] = str(row.get("has_seal") or "").strip().lower() in {"1", "true", "yes", "có", "x"}
    return _spec(item, None, f"line {line}")


def _spec(item: dict[str, Any], parent_code: str | None, where: str) -> UnitSpec:
    missing = [k for k in ("code", "name", "level") if not str(item.get(k) or "").strip()]
    if missing:
        raise InvalidTreeError(f"{where}: missing {', '.join(missing)}")
    mailboxes = item.get("mailboxes") or []
    if isinstance(mailboxes, str):
        mailboxes = [mailboxes]
    return UnitSpec(
        code=nfc(str(item["code"])).upper(),
        name=nfc(str(item["name"])),
        level=nfc(str(item["level"])),
        parent_code=(nfc(str(item.get("parent_code") or "")).upper() or parent_code),
        mailboxes=[nfc(str(m)) for m in mailboxes],
        has_seal=bool(item.get("has_seal", False)),
    )


def _check_codes(specs: list[UnitSpec]) -> None:
    seen: set[str] = set()
    for spec in specs:
        if not valid_code(spec.code):
            raise InvalidTreeError(
                f"unit code {spec.code!r} is not an identifier code "
                "(e.g. 000.00.00.H49: digits and capitals in dot-separated groups, at most 35 characters)"
            )
        if spec.code in seen:
            raise InvalidTreeError(f"unit code {spec.code} appears twice in the file")
        seen.add(spec.code)


def dump_json(specs: list[UnitSpec]) -> str:
    rows = [spec.__dict__ for spec in specs]
    return json.dumps({"units": rows}, ensure_ascii=False, indent=2)


def dump_csv(specs: list[UnitSpec]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for s in specs:
        writer.writerow([s.code, s.name, s.level, s.parent_code or "", ";".join(s.mailboxes), str(s.has_seal).lower()])
    return buf.getvalue()
