"""The unit tree: import, export, move, rename, look-ups, subtree queries."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col

from service import audit
from service.storage.driver import advisory_xact_lock
from service.text import nfc, search_key
from service.units.errors import (
    InvalidTreeError,
    OwnUnitError,
    SealNameTakenError,
    UnitCodeTakenError,
    UnitNotFoundError,
    UnknownUnitsError,
)
from service.units.models import Unit, name_key
from service.units.tree import MAX_LEVELS, UnitSpec, check_label, check_mailboxes, code_key, not_a_code, valid_code

__all__ = [
    "Placed",
    "check_seal_name",
    "check_seal_names",
    "export_tree",
    "get_unit",
    "lock_tree",
    "move_unit",
    "own_unit_refusal",
    "rename_unit",
    "reparent",
    "resolve_units",
    "unit_in_scope",
    "update_unit",
]


MAX_DEPTH = MAX_LEVELS - 1  # a root has depth 0
_TREE_LOCK = 0x646F6378_74726565  # PostgreSQL advisory lock key of the tree's shape ("docxtree")


class Placed(Protocol):
    """Where a unit stands in the tree: a Unit, or the plain row an import works with."""

    @property
    def id(self) -> str: ...
    @property
    def code(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def depth(self) -> int: ...


async def get_unit(session: AsyncSession, id_or_code: str) -> Unit:
    """The unit with that id or identifier code. Raises UnitNotFoundError."""
    key = nfc(id_or_code)
    stmt = select(Unit).where((col(Unit.id) == key) | (col(Unit.code) == code_key(key)))
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
    stmt = select(Unit).where(col(Unit.id).in_(wanted) | col(Unit.code).in_([code_key(k) for k in wanted]))
    found = list((await session.execute(stmt)).scalars())
    by_key = {u.id: u for u in found} | {u.code: u for u in found}
    unknown = [k for k in wanted if k not in by_key and code_key(k) not in by_key]
    if unknown:
        raise UnknownUnitsError(f"unknown units: {', '.join(unknown)}", unknown=unknown)
    return [by_key.get(k) or by_key[code_key(k)] for k in wanted]


async def lock_tree(session: AsyncSession) -> None:
    """Serialise changes to the tree's shape (moves, imports) until the transaction ends.

    Call it first, before reading the units to change. Two moves checked at once against
    the tree as it was could each pass the cycle and depth checks and together make a
    loop (A under B, B under A). PostgreSQL: a transaction-scoped advisory lock, across
    processes. SQLite already lets one writer in at a time.
    """
    await advisory_xact_lock(session, _TREE_LOCK)


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
    await reparent(session, unit, new_parent)
    await session.flush()
    await audit.append(session, action="unit.moved", actor_id=actor_id, unit_id=unit.id, object_id=unit.id,
                       data={"code": unit.code, "from_parent_id": before, "to_parent_id": unit.parent_id})
    return unit


async def reparent(session: AsyncSession, unit: Placed, parent: Placed | None) -> tuple[str, str, int]:
    """Move ``unit``'s subtree under ``parent`` in the database and in the units the session
    holds; the caller holds the tree's lock and read both units under it. Returns the old and
    the new path prefix and the change of depth, for other copies the caller keeps.
    Raises InvalidTreeError (a cycle, too deep)."""
    if parent is not None and parent.path.startswith(unit.path):
        raise InvalidTreeError(f"cannot move {unit.code} under its own descendant {parent.code}")
    old_prefix = unit.path
    new_prefix = (parent.path if parent else "/") + unit.id + "/"
    delta = (parent.depth + 1 if parent else 0) - unit.depth
    parent_id = parent.id if parent else None
    await session.flush()
    if delta > 0:
        await _check_depth(session, unit, delta)
    await session.execute(
        update(Unit)
        .where(col(Unit.path).startswith(old_prefix))
        .values(path=new_prefix + func.substr(col(Unit.path), len(old_prefix) + 1), depth=col(Unit.depth) + delta)
        .execution_options(synchronize_session=False)
    )
    await session.execute(update(Unit).where(col(Unit.id) == unit.id).values(parent_id=parent_id)
                          .execution_options(synchronize_session=False))
    _patch_loaded_paths(session, old_prefix, new_prefix, delta, (unit.id, parent_id))
    return old_prefix, new_prefix, delta


async def _check_depth(session: AsyncSession, unit: Placed, delta: int) -> None:
    deepest = (await session.execute(
        select(func.max(col(Unit.depth))).where(col(Unit.path).startswith(unit.path)))).scalar_one()
    if deepest + delta > MAX_DEPTH:
        raise InvalidTreeError(f"moving {unit.code} there would make the tree {deepest + delta + 1} levels deep; "
                               f"a unit tree has at most {MAX_LEVELS} levels")


def _patch_loaded_paths(session: AsyncSession, old_prefix: str, new_prefix: str, delta: int,
                        moved: tuple[str, str | None]) -> None:
    # The bulk UPDATEs bypassed the identity map: bring loaded units in line
    # without marking them dirty. ``moved``: the moved unit's id and its new parent's.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Unit) and obj.path.startswith(old_prefix):
            set_committed_value(obj, "path", new_prefix + obj.path[len(old_prefix):])
            set_committed_value(obj, "depth", obj.depth + delta)
            if obj.id == moved[0]:
                set_committed_value(obj, "parent_id", moved[1])


async def rename_unit(session: AsyncSession, unit: Unit, name: str) -> Unit:
    unit.name = nfc(name)
    unit.name_folded = name_key(unit.name)
    await session.flush()
    return unit


async def check_seal_name(session: AsyncSession, unit_id: str, name: str) -> None:
    """Raises SealNameTakenError if a unit other than ``unit_id`` holds a seal and has ``name``
    as a seal reads it (the comparison documents.signing makes before it seals). Anywhere in the
    tree: a namesake under another admin would otherwise stop that unit sealing (the province's
    seal stopped by a branch renamed after it)."""
    await check_seal_names(session, {unit_id: name})


_NAMES_PER_QUERY = 500


async def check_seal_names(session: AsyncSession, names: dict[str, str]) -> None:
    """:func:`check_seal_name` for every unit id and name of ``names`` (an import's), a query per 500."""
    wanted = {name_key(n) for n in names.values()}
    holders: dict[str, set[str]] = {}  # search key -> ids of the sealed units that have it
    keys = sorted(wanted)
    for at in range(0, len(keys), _NAMES_PER_QUERY):
        rows = await session.execute(select(col(Unit.id), col(Unit.name)).where(
            col(Unit.has_seal), col(Unit.name_folded).in_(keys[at:at + _NAMES_PER_QUERY])))
        for unit_id, name in rows:
            holders.setdefault(search_key(name), set()).add(unit_id)
    for unit_id, name in names.items():
        if holders.get(search_key(name), set()) - {unit_id}:
            raise SealNameTakenError(f"another unit that holds a seal is already named {name}: a seal names one "
                                     "unit alone, so a unit with a seal needs a name of its own; choose another name")


async def update_unit(
    session: AsyncSession, unit: Unit, *, name: str | None, level: str | None,
    code: str | None, mailboxes: list[str] | None, has_seal: bool | None, scope_path: str = "/",
    actor_id: str | None = None,
) -> Unit:
    """Change a unit's descriptive fields, checked as an import checks them; what changed is
    audited, by ``actor_id``. ``scope_path`` is the path of the admin's own unit: that unit's
    mailboxes are the admin's to change, its name, level, code and seal are not. Raises
    InvalidTreeError for a bad value, OwnUnitError, and UnitCodeTakenError for a code another
    unit has (named if it lies under ``scope_path``)."""
    where = f"unit {unit.code}"
    name = check_label(name, "name", where) if name is not None else None
    level = check_label(level, "level", where) if level is not None else None
    boxes = check_mailboxes(mailboxes, where) if mailboxes is not None else None
    if unit.path == scope_path:
        await _keep_own_unit(session, unit, {"name": name, "level": level, "code": code and code_key(code),
                                             "seal": has_seal})
    before = {k: getattr(unit, k) for k in _DESCRIBED}
    sealed = unit.has_seal if has_seal is None else has_seal
    if sealed and ((name is not None and nfc(name) != unit.name) or (has_seal and not unit.has_seal)):
        await check_seal_name(session, unit.id, nfc(name) if name is not None else unit.name)
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


async def _keep_own_unit(session: AsyncSession, unit: Unit, wanted: dict[str, object]) -> None:
    """An admin's own unit keeps its name, level, code and seal; a value sent as it is changes nothing."""
    now = {"name": unit.name, "level": unit.level, "code": unit.code, "seal": unit.has_seal}
    changed = [k for k, value in wanted.items() if value is not None and value != now[k]]
    if changed:
        raise own_unit_refusal(unit.code, changed, await _code_of(session, unit.parent_id))


def own_unit_refusal(code: str, changed: list[str], parent_code: str | None) -> OwnUnitError:
    """The refusal of a change to an admin's own unit (``changed``: name, level, code, seal)."""
    by = (f"an administrator of the unit above it ({parent_code}) or the operator"
          if parent_code else "the operator")
    return OwnUnitError(f"unit {code} is your own unit: its {', '.join(changed)} can be changed only by {by} "
                        "(docexchange units import on the server); you manage the units below it, and its mailboxes",
                        unit=code, fields=changed)


async def _code_of(session: AsyncSession, unit_id: str | None) -> str | None:
    if unit_id is None:
        return None
    code: str | None = (await session.execute(select(col(Unit.code)).where(col(Unit.id) == unit_id))).scalar()
    return code


async def _free_code(session: AsyncSession, unit: Unit, code: str, scope_path: str) -> str:
    # Checked before the write: the unique index stays as the backstop for a race, but its
    # error ("changed at the same moment; retry") would send the clerk retrying in vain.
    code = code_key(code)
    if not valid_code(code):
        raise not_a_code(code)
    stmt = select(Unit).where(col(Unit.code) == code, col(Unit.id) != unit.id)
    other = (await session.execute(stmt)).scalars().first()
    if other is None:
        return code
    if other.path.startswith(scope_path):
        raise UnitCodeTakenError(f"unit code {code} is already used by {other.name}; choose another code")
    raise UnitCodeTakenError(f"unit code {code} is already taken by another unit; choose another code")


async def export_tree(session: AsyncSession, root: Unit | None = None) -> list[UnitSpec]:
    """Every unit (or ``root``'s subtree), parents before children. ``root`` names its real
    parent: the file imported again leaves the subtree where it is (an admin's import takes
    its own unit's parent as it stands)."""
    stmt = select(Unit).order_by(col(Unit.depth), col(Unit.code))
    if root is not None:
        stmt = stmt.where(col(Unit.path).startswith(root.path))
    units = list((await session.execute(stmt)).scalars())
    codes = {u.id: u.code for u in units}
    if root is not None and root.parent_id:
        codes[root.parent_id] = await _code_of(session, root.parent_id) or ""
    return [
        UnitSpec(u.code, u.name, u.level, codes.get(u.parent_id or "") or None, list(u.mailboxes), u.has_seal)
        for u in units
    ]
