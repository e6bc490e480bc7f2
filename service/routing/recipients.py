"""Turning a request's recipients (units and selectors) into unit rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.errors import InvalidInputError, PermissionDeniedError
from service.routing.policy import UnitRef
from service.storage import driver
from service.text import nfc, search_key
from service.units import Unit, UnknownUnitsError

__all__ = ["RecipientSelector", "expand_recipients", "unit_ref"]

_COLUMNS = (col(Unit.id), col(Unit.code), col(Unit.name), col(Unit.path), col(Unit.parent_id))


class RecipientSelector:
    """One recipient entry: a unit, or every unit (of a level) under a unit."""

    def __init__(self, unit: str | None = None, under: str | None = None,
                 level: str | None = None, include_root: bool = False) -> None:
        if bool(unit) == bool(under):
            raise InvalidInputError("each recipient names either 'unit' or 'under' (a selector)")
        self.unit, self.under, self.level, self.include_root = unit, under, level, include_root

    @classmethod
    def parse(cls, item: Any) -> RecipientSelector:
        if isinstance(item, str):
            return cls(unit=item)
        if isinstance(item, dict):
            return cls(unit=item.get("unit"), under=item.get("under"),
                       level=item.get("level"), include_root=bool(item.get("include_root", False)))
        raise InvalidInputError("a recipient is a unit code/id or an object {unit} / {under, level}")


def unit_ref(unit: Unit) -> UnitRef:
    return UnitRef(unit.id, unit.code, unit.name, unit.path, unit.parent_id)


async def expand_recipients(session: AsyncSession, sender_id: str,
                            selectors: list[RecipientSelector]) -> tuple[UnitRef, list[UnitRef]]:
    """The sending unit and the recipients (distinct, in request order), the named ones
    and the sender read in one look-up. Raises UnknownUnitsError for unknown names."""
    named = [s.unit or s.under or "" for s in selectors]
    sender, anchors = await _anchors(session, sender_id, named)
    seen: dict[str, UnitRef] = {}
    for sel in selectors:
        anchor = anchors[nfc(sel.unit or sel.under or "")]
        if sel.unit:
            seen.setdefault(anchor.id, anchor)
            continue
        for ref in await _subtree(session, anchor, sel.level, sel.include_root):
            seen.setdefault(ref.id, ref)
    return sender, list(seen.values())


_BY_ID_OR_CODE = select(*_COLUMNS).where(col(Unit.id).in_(bindparam("ids", expanding=True))
                                         | col(Unit.code).in_(bindparam("codes", expanding=True)))


async def _anchors(session: AsyncSession, sender_id: str, keys: list[str]) -> tuple[UnitRef, dict[str, UnitRef]]:
    wanted = {nfc(k) for k in keys}
    params = {"ids": [*wanted, sender_id], "codes": list({k.upper() for k in wanted})}
    rows = [UnitRef(*row) for row in await driver.fetch(session, _BY_ID_OR_CODE, params)]
    by_id = {r.id: r for r in rows}
    by_key = by_id | {r.code: r for r in rows}
    found = {k: by_key.get(k) or by_key.get(k.upper()) for k in wanted}
    unknown = sorted(k for k, v in found.items() if v is None)
    if unknown:
        raise UnknownUnitsError(f"unknown recipient units: {', '.join(unknown)}", unknown=unknown)
    sender = by_id.get(sender_id)
    if sender is None:  # the caller's unit was removed while its token still works
        raise PermissionDeniedError("your unit no longer exists")
    return sender, {k: v for k, v in found.items() if v is not None}


# A province is 10,000+ rows: read as plain rows (``storage.driver``), not ORM results.
_SUBTREE = (select(*_COLUMNS, col(Unit.level)).where(col(Unit.path).startswith(bindparam("path")))
            .order_by(col(Unit.depth), col(Unit.code)))


async def _subtree(session: AsyncSession, root: UnitRef, level: str | None, include_root: bool) -> list[UnitRef]:
    rows = await driver.fetch(session, _SUBTREE, {"path": root.path})
    wanted_level = search_key(level) if level else None
    refs = []
    for unit_id, code, name, path, parent_id, unit_level in rows:
        ref = UnitRef(unit_id, code, name, path, parent_id)
        if ref.id == root.id and not include_root:
            continue
        if wanted_level is not None and search_key(unit_level) != wanted_level:
            continue
        refs.append(ref)
    return refs
