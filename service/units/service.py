"""The unit tree: import, export, move, rename, look-ups, subtree queries."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col

from service import audit
from service.storage.driver import advisory_xact_lock
from service.text import fold, nfc
from service.units.errors import InvalidTreeError, UnitCodeTakenError, UnitNotFoundError, UnknownUnitsError
from service.units.models import Unit
from service.units.tree import MAX_LEVELS, UnitSpec, check_label, check_mailbox, valid_code

__all__ = [
    "ImportResult",
    "export_tree",
    "get_unit",
    "import_tree",
    "lock_tree",
    "move_unit",
    "rename_unit",
    "resolve_units",
    "unit_in_scope",
    "update_unit",
]


MAX_DEPTH = MAX_LEVELS - 1  # a root has depth 0
_CODES_AUDITED = 200  # an import's entry names this many of its units, then counts the rest
_TREE_LOCK = 0x646F6378_74726565  # PostgreSQL advisory lock key of the tree's shape ("docxtree")


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int


async def get_unit(session: AsyncSession, id_or_code: str) -> Unit:
    """The unit with that id or identifier code. Raises UnitNotFoundError."""
    key = nfc(id_or_code)
    stmt = select(Unit).where((col(Unit.id) == key) | (col(Unit.code) == key.upper()))
    unit = (await session.execute(stmt)).scalars().first()
    if unit is None:
        raise UnitNotFoundError(f"no unit {key!r}")
    return unit


async def unit_in_scope(session: AsyncSession, id_or_code: str, scope_path: str) -> Unit:
    """The unit if it lies in the subtree at ``scope_path``; unknown and
    out-of-scope units get the same UnitNotFoundError."""
    try:
        unit = await get_unit(session, id_or_code)
    except UnitNotFoundError:
        unit = None
    if unit is None or not unit.path.startswith(scope_path):
        raise UnitNotFoundError("no such unit in your part of the tree")
    return unit


async def covers_every_unit(session: AsyncSession, scope_path: str) -> bool:
    """Whether the subtree at ``scope_path`` holds every unit of the deployment."""
    outside = select(col(Unit.id)).where(~col(Unit.path).startswith(scope_path, autoescape=True)).limit(1)
    return (await session.execute(outside)).first() is None


async def resolve_units(session: AsyncSession, keys: list[str]) -> list[Unit]:
    """Units by id or code, in order; raises UnknownUnitsError listing every miss."""
    wanted = [nfc(k) for k in keys]
    stmt = select(Unit).where(col(Unit.id).in_(wanted) | col(Unit.code).in_([k.upper() for k in wanted]))
    found = list((await session.execute(stmt)).scalars())
    by_key = {u.id: u for u in found} | {u.code: u for u in found}
    unknown = [k for k in wanted if k not in by_key and k.upper() not in by_key]
    if unknown:
        raise UnknownUnitsError(f"unknown units: {', '.join(unknown)}", unknown=unknown)
    return [by_key.get(k) or by_key[k.upper()] for k in wanted]


async def lock_tree(session: AsyncSession) -> None:
    """Serialise changes to the tree's shape (moves, imports) until the transaction ends.

    Call it first, before reading the units to change. Two moves checked at once against
    the tree as it was could each pass the cycle and depth checks and together make a
    loop (A under B, B under A). PostgreSQL: a transaction-scoped advisory lock, across
    processes. SQLite already lets one writer in at a time.
    """
    await advisory_xact_lock(session, _TREE_LOCK)


async def import_tree(session: AsyncSession, specs: list[UnitSpec], scope: Unit | None = None, *,
                      actor_id: str | None = None) -> ImportResult:
    """Create or update every unit of ``specs`` (matched by code), parents first.

    Existing units keep their id (and so their documents) when renamed or moved.
    With ``scope`` (an admin's own unit) the import stays inside its subtree: every
    unit written and every parent named lies there, and ``scope`` itself keeps its
    place; without it (the operator's CLI) the whole tree is open.
    Raises InvalidTreeError (missing or out-of-scope parent, cycle, too deep) and
    UnitCodeTakenError (a code used outside ``scope``); the caller's rollback then
    leaves the tree as it was. Audited as one entry, by ``actor_id`` (None: the operator's
    command line).
    """
    await lock_tree(session)  # again if the caller took it: the lock is re-entrant
    existing = {u.code: u for u in (await session.execute(select(Unit))).scalars()}
    if scope is not None:
        _check_scope(specs, existing, scope)
    # Units outside the scope are not parents to offer: unknown and out-of-scope look alike.
    known = existing if scope is None else {c: u for c, u in existing.items() if _inside(u, scope)}
    created = updated = 0
    for spec in _parents_first(specs, known, "known" if scope is None else "in your part of the tree"):
        unit = existing.get(spec.code)
        parent = known.get(spec.parent_code) if spec.parent_code else None
        if unit is None:
            unit = _new_unit(spec, parent)
            session.add(unit)
            existing[spec.code] = known[spec.code] = unit
            created += 1
        else:
            move = not spec.keeps_parent and (scope is None or unit.id != scope.id)
            await _apply(session, unit, spec, parent, move=move)
            updated += 1
    await session.flush()
    codes = [s.code for s in specs]
    await audit.append(session, action="units.imported", actor_id=actor_id, unit_id=scope.id if scope else None,
                       data={"created": created, "updated": updated, "codes": codes[:_CODES_AUDITED],
                             "more": max(0, len(codes) - _CODES_AUDITED)})
    return ImportResult(created, updated)


def _inside(unit: Unit, scope: Unit) -> bool:
    return unit.path.startswith(scope.path)


def _check_scope(specs: list[UnitSpec], existing: dict[str, Unit], scope: Unit) -> None:
    for spec in specs:
        unit = existing.get(spec.code)
        if unit is not None and not _inside(unit, scope):
            # Codes are unique across the tree, so "taken" is all that can be said.
            raise UnitCodeTakenError(f"unit code {spec.code} is already taken by a unit outside your part "
                                     "of the tree; choose another code")
        if spec.code == scope.code and spec.parent_code:
            raise InvalidTreeError(f"unit {spec.code} is your own unit: it keeps its place in the tree "
                                   "(leave its parent_code empty)")
        if spec.code != scope.code and not spec.parent_code and not (spec.keeps_parent and unit is not None):
            raise InvalidTreeError(f"unit {spec.code} has no parent; imported units go under your unit {scope.code}")


def _parents_first(specs: list[UnitSpec], known: dict[str, Unit], where: str) -> list[UnitSpec]:
    """``specs`` with every parent before its children. Walks each chain of parents
    in a loop, not by recursion: a file may hold a chain of any length."""
    by_code = {s.code: s for s in specs}
    ordered: list[UnitSpec] = []
    placed: set[str] = set()
    for spec in specs:
        chain: list[UnitSpec] = []
        in_chain: set[str] = set()
        step: UnitSpec | None = spec
        while step is not None and step.code not in placed:
            if step.code in in_chain:
                raise InvalidTreeError(f"unit {step.code} is its own ancestor (cycle in the file)")
            chain.append(step)
            in_chain.add(step.code)
            step = _parent_spec(step, by_code, known, where)
        ordered.extend(reversed(chain))
        placed.update(s.code for s in chain)
    return ordered


def _parent_spec(spec: UnitSpec, by_code: dict[str, UnitSpec], known: dict[str, Unit],
                 where: str) -> UnitSpec | None:
    """The parent's entry in the file; None when there is none (a root, or a parent already stored)."""
    parent = spec.parent_code
    if parent and parent in by_code:
        return by_code[parent]
    if parent and parent not in known:
        raise InvalidTreeError(f"unit {spec.code}: parent {parent} is neither in the file nor {where}")
    return None


def _new_unit(spec: UnitSpec, parent: Unit | None) -> Unit:
    if parent is not None and parent.depth + 1 > MAX_DEPTH:
        raise InvalidTreeError(f"unit {spec.code} would be level {parent.depth + 2} of the tree; "
                               f"a unit tree has at most {MAX_LEVELS} levels")
    unit = Unit(
        code=spec.code,
        name=spec.name,
        name_folded=fold(spec.name),
        level=spec.level,
        parent_id=parent.id if parent else None,
        mailboxes=spec.mailboxes or [],
        has_seal=bool(spec.has_seal),
    )
    unit.path = (parent.path if parent else "/") + unit.id + "/"
    unit.depth = parent.depth + 1 if parent else 0
    return unit


async def _apply(session: AsyncSession, unit: Unit, spec: UnitSpec, parent: Unit | None, *, move: bool) -> None:
    unit.name, unit.name_folded, unit.level = spec.name, fold(spec.name), spec.level
    if spec.mailboxes is not None:
        unit.mailboxes = spec.mailboxes
    if spec.has_seal is not None:
        unit.has_seal = spec.has_seal
    if move and (parent.id if parent else None) != unit.parent_id:
        await _reparent(session, unit, parent)


async def move_unit(session: AsyncSession, unit: Unit, new_parent: Unit | None, *,
                    actor_id: str | None = None) -> Unit:
    """Put ``unit`` (and its subtree) under ``new_parent`` (audited). Raises InvalidTreeError."""
    await lock_tree(session)
    # Where both stand now: read before the lock, they may have moved since.
    await session.flush()
    await session.refresh(unit, ["path", "depth", "parent_id"])
    if new_parent is not None:
        await session.refresh(new_parent, ["path", "depth"])
    before = unit.parent_id
    await _reparent(session, unit, new_parent)
    await session.flush()
    await audit.append(session, action="unit.moved", actor_id=actor_id, unit_id=unit.id, object_id=unit.id,
                       data={"code": unit.code, "from_parent_id": before, "to_parent_id": unit.parent_id})
    return unit


async def _reparent(session: AsyncSession, unit: Unit, parent: Unit | None) -> None:
    """Move ``unit``'s subtree; the caller holds the tree's lock and read both units under it."""
    if parent is not None and parent.path.startswith(unit.path):
        raise InvalidTreeError(f"cannot move {unit.code} under its own descendant {parent.code}")
    old_prefix = unit.path
    new_prefix = (parent.path if parent else "/") + unit.id + "/"
    delta = (parent.depth + 1 if parent else 0) - unit.depth
    await session.flush()
    if delta > 0:
        await _check_depth(session, unit, delta)
    await session.execute(
        update(Unit)
        .where(col(Unit.path).startswith(old_prefix))
        .values(path=new_prefix + func.substr(col(Unit.path), len(old_prefix) + 1), depth=col(Unit.depth) + delta)
        .execution_options(synchronize_session=False)
    )
    unit.parent_id = parent.id if parent else None
    _patch_loaded_paths(session, old_prefix, new_prefix, delta)


async def _check_depth(session: AsyncSession, unit: Unit, delta: int) -> None:
    deepest = (await session.execute(
        select(func.max(col(Unit.depth))).where(col(Unit.path).startswith(unit.path)))).scalar_one()
    if deepest + delta > MAX_DEPTH:
        raise InvalidTreeError(f"moving {unit.code} there would make the tree {deepest + delta + 1} levels deep; "
                               f"a unit tree has at most {MAX_LEVELS} levels")


def _patch_loaded_paths(session: AsyncSession, old_prefix: str, new_prefix: str, delta: int) -> None:
    # The bulk UPDATE bypassed the identity map: bring loaded units in line
    # without marking them dirty.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Unit) and obj.path.startswith(old_prefix):
            set_committed_value(obj, "path", new_prefix + obj.path[len(old_prefix):])
            set_committed_value(obj, "depth", obj.depth + delta)


async def rename_unit(session: AsyncSession, unit: Unit, name: str) -> Unit:
    unit.name = nfc(name)
    unit.name_folded = fold(unit.name)
    await session.flush()
    return unit


async def update_unit(
    session: AsyncSession, unit: Unit, *, name: str | None, level: str | None,
    code: str | None, mailboxes: list[str] | None, has_seal: bool | None, scope_path: str = "/",
    actor_id: str | None = None,
) -> Unit:
    """Change a unit's descriptive fields, checked as an import checks them; what changed is
    audited, by ``actor_id``. Raises InvalidTreeError for a bad value and UnitCodeTakenError
    for a code another unit has (named if it lies under ``scope_path``)."""
    where = f"unit {unit.code}"
    name = check_label(name, "name", where) if name is not None else None
    level = check_label(level, "level", where) if level is not None else None
    boxes = [check_mailbox(m, where) for m in mailboxes] if mailboxes is not None else None
    before = {k: getattr(unit, k) for k in _DESCRIBED}
    if code is not None:
        unit.code = await _free_code(session, unit, code, scope_path)
    if name is not None:
        await rename_unit(session, unit, name)
    if level is not None:
        unit.level = level
    if boxes is not None:
        unit.mailboxes = boxes
    if has_seal is not None:
        unit.has_seal = has_seal
    await session.flush()
    changed = {k: getattr(unit, k) for k in _DESCRIBED if getattr(unit, k) != before[k]}
    if changed:
        await audit.append(session, action="unit.updated", actor_id=actor_id, unit_id=unit.id, object_id=unit.id,
                           data={"code": before["code"], "changed": changed})
    return unit


_DESCRIBED = ("code", "name", "level", "mailboxes", "has_seal")


async def _free_code(session: AsyncSession, unit: Unit, code: str, scope_path: str) -> str:
    # Checked before the write: the unique index stays as the backstop for a race, but its
    # error ("changed at the same moment; retry") would send the clerk retrying in vain.
    code = nfc(code).upper()
    if not valid_code(code):
        raise InvalidTreeError(f"unit code {code[:60]!r} is not an identifier code")
    stmt = select(Unit).where(col(Unit.code) == code, col(Unit.id) != unit.id)
    other = (await session.execute(stmt)).scalars().first()
    if other is None:
        return code
    if other.path.startswith(scope_path):
        raise UnitCodeTakenError(f"unit code {code} is already used by {other.name}; choose another code")
    raise UnitCodeTakenError(f"unit code {code} is already taken by another unit; choose another code")


async def export_tree(session: AsyncSession, root: Unit | None = None) -> list[UnitSpec]:
    """Every unit (or ``root``'s subtree), parents before children."""
    stmt = select(Unit).order_by(col(Unit.depth), col(Unit.code))
    if root is not None:
        stmt = stmt.where(col(Unit.path).startswith(root.path))
    units = list((await session.execute(stmt)).scalars())
    codes = {u.id: u.code for u in units}
    if root is not None and root.parent_id:
        codes[root.parent_id] = ""
    return [
        UnitSpec(u.code, u.name, u.level, codes.get(u.parent_id or "") or None, list(u.mailboxes), u.has_seal)
        for u in units
    ]
