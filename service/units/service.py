"""The unit tree: import, export, move, rename, look-ups, subtree queries."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col

from service.text import fold, nfc
from service.units.errors import InvalidTreeError, UnitNotFoundError, UnknownUnitsError
from service.units.models import Unit
from service.units.tree import UnitSpec, valid_code

__all__ = [
    "ImportResult",
    "export_tree",
    "get_unit",
    "import_tree",
    "move_unit",
    "rename_unit",
    "resolve_units",
    "unit_in_scope",
    "update_unit",
]


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


async def import_tree(session: AsyncSession, specs: list[UnitSpec]) -> ImportResult:
    """Create or update every unit of ``specs`` (matched by code), parents first.

    Existing units keep their id (and so their documents) when renamed or moved.
    Raises InvalidTreeError for a missing parent or a cycle.
    """
    existing = {u.code: u for u in (await session.execute(select(Unit))).scalars()}
    created = updated = 0
    for spec in _parents_first(specs, existing):
        unit = existing.get(spec.code)
        parent = existing.get(spec.parent_code) if spec.parent_code else None
        if unit is None:
            unit = _new_unit(spec, parent)
            session.add(unit)
            existing[spec.code] = unit
            created += 1
        else:
            await _apply(session, unit, spec, parent)
            updated += 1
    await session.flush()
    return ImportResult(created, updated)


def _parents_first(specs: list[UnitSpec], existing: dict[str, Unit]) -> list[UnitSpec]:
    by_code = {s.code: s for s in specs}
    ordered: list[UnitSpec] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(spec: UnitSpec) -> None:
        if state.get(spec.code) == 2:
            return
        if state.get(spec.code) == 1:
            raise InvalidTreeError(f"unit {spec.code} is its own ancestor (cycle in the file)")
        state[spec.code] = 1
        parent = spec.parent_code
        if parent and parent in by_code:
            visit(by_code[parent])
        elif parent and parent not in existing:
            raise InvalidTreeError(f"unit {spec.code}: parent {parent} is neither in the file nor known")
        state[spec.code] = 2
        ordered.append(spec)

    for spec in specs:
        visit(spec)
    return ordered


def _new_unit(spec: UnitSpec, parent: Unit | None) -> Unit:
    unit = Unit(
        code=spec.code,
        name=spec.name,
        name_folded=fold(spec.name),
        level=spec.level,
        parent_id=parent.id if parent else None,
        mailboxes=spec.mailboxes,
        has_seal=spec.has_seal,
    )
    unit.path = (parent.path if parent else "/") + unit.id + "/"
    unit.depth = parent.depth + 1 if parent else 0
    return unit


async def _apply(session: AsyncSession, unit: Unit, spec: UnitSpec, parent: Unit | None) -> None:
    unit.name, unit.name_folded, unit.level = spec.name, fold(spec.name), spec.level
    unit.mailboxes, unit.has_seal = spec.mailboxes, spec.has_seal
    if (parent.id if parent else None) != unit.parent_id:
        await _reparent(session, unit, parent)


async def move_unit(session: AsyncSession, unit: Unit, new_parent: Unit | None) -> Unit:
    """Put ``unit`` (and its subtree) under ``new_parent``. Raises InvalidTreeError."""
    await _reparent(session, unit, new_parent)
    await session.flush()
    return unit


async def _reparent(session: AsyncSession, unit: Unit, parent: Unit | None) -> None:
    if parent is not None and parent.path.startswith(unit.path):
        raise InvalidTreeError(f"cannot move {unit.code} under its own descendant {parent.code}")
    old_prefix = unit.path
    new_prefix = (parent.path if parent else "/") + unit.id + "/"
    delta = (parent.depth + 1 if parent else 0) - unit.depth
    await session.flush()
    await session.execute(
        update(Unit)
        .where(col(Unit.path).startswith(old_prefix))
        .values(path=new_prefix + func.substr(col(Unit.path), len(old_prefix) + 1), depth=col(Unit.depth) + delta)
        .execution_options(synchronize_session=False)
    )
    unit.parent_id = parent.id if parent else None
    _patch_loaded_paths(session, old_prefix, new_prefix, delta)


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
    code: str | None, mailboxes: list[str] | None, has_seal: bool | None,
) -> Unit:
    """Change a unit's descriptive fields. Raises InvalidTreeError for a bad code."""
    if code is not None:
        code = nfc(code).upper()
        if not valid_code(code):
            raise InvalidTreeError(f"unit code {code!r} is not an identifier code")
        unit.code = code
    if name is not None:
        await rename_unit(session, unit, name)
    if level is not None:
        unit.level = nfc(level)
    if mailboxes is not None:
        unit.mailboxes = [nfc(m) for m in mailboxes]
    if has_seal is not None:
        unit.has_seal = has_seal
    await session.flush()
    return unit


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
