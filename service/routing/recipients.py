"""Turning a request's recipients (units and selectors) into unit rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.errors import InvalidInputError, PermissionDeniedError
from service.routing.policy import RoutingPolicy, RoutingRefusedError, UnitRef
from service.storage import driver
from service.text import echo, first_control, nfc, search_key
from service.units import Unit, UnknownUnitsError, code_key

__all__ = [
    "MAX_RECIPIENTS",
    "MAX_SELECTORS",
    "InvalidRecipientError",
    "NoUnitReachedError",
    "RecipientSelector",
    "parse_recipients",
    "resolve_recipients",
    "unit_ref",
]

# Units named one by one. The look-up binds two parameters per key (id, code), and asyncpg
# binds at most 32,767; a province's 10,000+ units are one selector {"under": code} away.
MAX_RECIPIENTS = 15_000
# Each selector is a subtree query of up to a province (10,000+ rows): a request needs a few.
MAX_SELECTORS = 100
_KEY_CHARS = 64  # the longest unit code (ids are 32)
_LEVEL_CHARS = 100  # as Unit.level
_SHOWN = 20  # keys listed in an answer; the rest are counted
_SHAPE = 'a unit code or id, or an object {"unit": code} or {"under": code, "level": name}'

_COLUMNS = (col(Unit.id), col(Unit.code), col(Unit.name), col(Unit.path), col(Unit.parent_id))


class InvalidRecipientError(InvalidInputError):
    """Recipient entries of the wrong shape; the detail names each by its position (from 1)."""

    code = "invalid-recipient"
    title = "Invalid recipient"


@dataclass(frozen=True, slots=True)
class RecipientSelector:
    """One recipient entry: a unit (``key``), or every unit (of ``level``) under ``key``.
    ``key`` is kept as the caller typed it: answers about it echo it unchanged."""

    key: str
    under: bool = False
    level: str | None = None
    include_root: bool = False

    @classmethod
    def parse(cls, item: Any) -> RecipientSelector:
        """From a code/id or ``{"unit": …}`` / ``{"under": …, "level": …, "include_root": …}``.

        Raises InvalidRecipientError saying what is wrong with the entry.
        """
        if isinstance(item, str):
            return cls(_key("the code or id", item))
        if not isinstance(item, dict):
            raise InvalidRecipientError(f"must be {_SHAPE}")
        unknown = [k for k in item if k not in ("unit", "under", "level", "include_root")]
        if unknown:
            raise InvalidRecipientError(f"unknown field {repr(echo(unknown[0], 40))}; use 'unit', or 'under' "
                                        "with optional 'level' and 'include_root'")
        if ("unit" in item) == ("under" in item):
            raise InvalidRecipientError("name either 'unit' (one unit) or 'under' (the units below one)")
        if "unit" in item:
            if "level" in item or "include_root" in item:
                raise InvalidRecipientError("'level' and 'include_root' go with 'under', not with 'unit'")
            return cls(_key("'unit'", item["unit"]))
        return cls(_key("'under'", item["under"]), under=True, level=_level(item.get("level")),
                   include_root=_flag(item.get("include_root", False)))


def _key(what: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidRecipientError(f"{what} must be a unit code or id")
    if not value.strip():
        raise InvalidRecipientError(f"{what} is empty: give a unit code or id")
    if len(nfc(value)) > _KEY_CHARS:
        raise InvalidRecipientError(f"{what} is longer than any unit code or id ({_KEY_CHARS} characters at most)")
    if _unprintable(value):
        raise InvalidRecipientError(f"{what} contains control characters (e.g. NUL); type the unit code or id")
    return value


def _level(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(nfc(value)) > _LEVEL_CHARS or _unprintable(value):
        raise InvalidRecipientError("'level' must be the name of a level of the unit tree, e.g. \"Chi bộ\"")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):  # "false" is not false
        raise InvalidRecipientError("'include_root' must be true or false")
    return value


def _unprintable(text: str) -> bool:
    # No control character (not even a tab) has a place in a code or a level name.
    return first_control(text, breaks=False) is not None


def parse_recipients(items: Sequence[Any]) -> list[RecipientSelector]:
    """Every entry of a request's ``recipients``.

    Raises InvalidRecipientError naming each bad entry by position, e.g. "recipient 2:
    'under' must be a unit code or id"; ``extra['positions']`` lists them.
    """
    if not items:
        raise InvalidRecipientError(f"name at least one recipient: {_SHAPE}")
    if len(items) > MAX_RECIPIENTS:
        raise InvalidRecipientError(f"at most {MAX_RECIPIENTS} recipients in one request, not {len(items)}; "
                                    'to reach every unit below one, use {"under": code}')
    selectors: list[RecipientSelector] = []
    problems: list[tuple[int, str]] = []
    for position, item in enumerate(items, start=1):
        try:
            selectors.append(RecipientSelector.parse(item))
        except InvalidRecipientError as exc:
            problems.append((position, exc.detail))
    if problems:
        shown = "; ".join(f"recipient {n}: {text}" for n, text in problems[:10])
        more = f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise InvalidRecipientError(shown + more, positions=[n for n, _ in problems[:100]])
    if sum(s.under for s in selectors) > MAX_SELECTORS:
        raise InvalidRecipientError(f'at most {MAX_SELECTORS} selectors {{"under": …}} in one request; '
                                    "one selector on a common parent reaches them all")
    return selectors


def unit_ref(unit: Unit) -> UnitRef:
    return UnitRef(unit.id, unit.code, unit.name, unit.path, unit.parent_id)


class NoUnitReachedError(InvalidInputError):
    """A selector names no unit at all: nothing is sent, rather than a document sent to no one."""

    code = "selector-reaches-no-unit"
    title = "The recipients reach no unit"


async def resolve_recipients(session: AsyncSession, sender_id: str, selectors: list[RecipientSelector],
                             policy: RoutingPolicy, *, known_by: RoutingPolicy | None = None,
                             ) -> tuple[UnitRef, list[UnitRef]]:
    """The sending unit and the recipients (distinct, in request order), the named ones and
    the sender read in one look-up, checked against ``policy``.

    A unit the sender may not know of (``RoutingPolicy.knows`` under ``known_by``, by default
    ``policy``) is answered as one that does not exist, so that naming units cannot probe the
    tree; a refusal names only units the sender may know of. A selector reaches below the
    sender's own unit only (or anywhere, when the policy allows any unit), whatever lies there:
    anchored elsewhere, its answer would tell whether units of its level exist below.

    Raises UnknownUnitsError, RoutingRefusedError, PermissionDeniedError (the sender's unit is gone).
    """
    known_by = known_by or policy
    sender, anchors = await _anchors(session, sender_id, [s.key for s in selectors], known_by)
    seen: dict[str, UnitRef] = {}
    expanded: set[tuple[str, str | None, bool]] = set()
    for sel in selectors:
        anchor = anchors[sel.key]
        if not sel.under:
            seen.setdefault(anchor.id, anchor)
            continue
        if not known_by.knows_all_below(sender, anchor):
            raise RoutingRefusedError(
                f'a selector {{"under": …}} names {sender.code} or a unit below it; {anchor.code} is neither, and '
                f"the routing policy ({known_by.describe()}) does not let {sender.code} reach every unit below it: "
                "name those units one by one", rules=list(known_by.rules), selector=anchor.code)
        wanted = (anchor.id, search_key(sel.level) if sel.level else None, sel.include_root)
        if wanted in expanded:  # the same selector twice is read once
            continue
        expanded.add(wanted)
        reached, levels = await _subtree(session, anchor, wanted[1], sel.include_root)
        if not reached:
            raise NoUnitReachedError(_reaches_nothing(anchor, sel.level, levels), selector=anchor.code)
        for ref in reached:
            seen.setdefault(ref.id, ref)
    recipients = list(seen.values())
    policy.check(sender, recipients, known_by=known_by)
    return sender, recipients


_BY_ID_OR_CODE = select(*_COLUMNS).where(col(Unit.id).in_(bindparam("ids", expanding=True))
                                         | col(Unit.code).in_(bindparam("codes", expanding=True)))


async def _anchors(session: AsyncSession, sender_id: str, keys: list[str],
                   known_by: RoutingPolicy) -> tuple[UnitRef, dict[str, UnitRef]]:
    """The sender, and the unit each typed key names. Raises UnknownUnitsError listing, as
    typed, the keys that name no unit the sender may know of."""
    typed = list(dict.fromkeys(keys))
    wanted = {nfc(k) for k in typed}
    params = {"ids": [*wanted, sender_id], "codes": list({code_key(k) for k in wanted})}
    rows = [UnitRef(*row) for row in await driver.fetch(session, _BY_ID_OR_CODE, params)]
    by_id = {r.id: r for r in rows}
    by_code = {r.code: r for r in rows}
    sender = by_id.get(sender_id)
    if sender is None:  # the caller's unit was removed while its token still works
        raise PermissionDeniedError("your unit no longer exists")
    found: dict[str, UnitRef] = {}
    for key in typed:
        k = nfc(key)
        # Hidden and missing units take the same path: one answer for both.
        match = next((r for r in (by_id.get(k), by_code.get(k), by_code.get(code_key(k)))
                      if r is not None and known_by.knows(sender, r)), None)
        if match is not None:
            found[key] = match
    unknown = [k for k in typed if k not in found]
    if unknown:
        more = f" and {len(unknown) - _SHOWN} more" if len(unknown) > _SHOWN else ""
        # Worded for both cases it stands for: a clerk who typed the province's code
        # learns why it is refused, not that the province does not exist.
        raise UnknownUnitsError(f"unknown recipient units: {', '.join(unknown[:_SHOWN])}{more}. Either no unit "
                                "has that code or id, or it is outside both your part of the tree and the units "
                                f"your unit may send to ({known_by.describe()}); check each code or id",
                                unknown=unknown[:100])
    return sender, found


# A province is 10,000+ rows: read as plain rows (``storage.driver``), not ORM results.
_SUBTREE = (select(*_COLUMNS, col(Unit.level)).where(col(Unit.path).startswith(bindparam("path")))
            .order_by(col(Unit.depth), col(Unit.code)))


async def _subtree(session: AsyncSession, root: UnitRef, level_key: str | None,
                   include_root: bool) -> tuple[list[UnitRef], list[str]]:
    """Units under ``root`` (of the level whose ``search_key`` is ``level_key``), and, when
    none is, the levels there are (to say what the level could have been)."""
    rows = await driver.fetch(session, _SUBTREE, {"path": root.path})
    keys: dict[str, str] = {}  # each level as stored → its search key: a tree has a handful of levels
    refs: list[UnitRef] = []
    for unit_id, code, name, path, parent_id, unit_level in rows:
        if unit_id == root.id and not include_root:
            continue
        if level_key is not None:
            key = keys.get(unit_level)
            if key is None:
                key = keys[unit_level] = search_key(unit_level)
            if key != level_key:
                continue
        refs.append(UnitRef(unit_id, code, name, path, parent_id))
    if refs:
        return refs, []
    levels = {search_key(row[5]): row[5] for row in rows if row[0] != root.id or include_root}
    return refs, sorted(levels.values())


def _reaches_nothing(anchor: UnitRef, level: str | None, levels: list[str]) -> str:
    if not levels:
        return f'{{"under": "{anchor.code}"}} reaches no unit: {anchor.name} has no units below it'
    typed = f'{{"under": "{anchor.code}", "level": "{echo(level or "")}"}}'
    return f"{typed} reaches no unit: the levels below {anchor.name} are " + ", ".join(f'"{x}"' for x in levels)
