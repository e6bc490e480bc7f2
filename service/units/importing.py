"""Importing a unit file: every unit created or updated by code, in one transaction.

A file may hold a province of 50,000 units, and the import runs on the event loop that
answers every other request. So the tree is read as plain rows (not ORM objects) a page at
a time, the file is checked and ordered on a worker thread, new units are written with the
bulk insert sends use (``storage.bulk``), only units that change are updated, and the loop
serves whatever waits after every ``_CHUNK`` units. The writes stay in the caller's
transaction: a refused file leaves nothing written.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col

from service import audit
from service.storage import driver
from service.storage.bulk import bulk_insert
from service.storage.types import new_id, utcnow
from service.units.errors import InvalidTreeError, UnitCodeTakenError, UnitNotFoundError
from service.units.models import Unit, name_key
from service.units.service import MAX_DEPTH, check_seal_names, lock_tree, own_unit_refusal, reparent
from service.units.tree import MAX_LEVELS, UnitSpec

__all__ = ["ImportResult", "import_tree"]

_CODES_AUDITED = 200  # an import's entry names this many of its units, then counts the rest
_CHUNK = 500  # units written between two turns of the event loop: some 25 ms of work
# A pause, not sleep(0): after sleep(0) this task would run again before the requests that
# arrived meanwhile, and a request that takes several turns would wait a chunk at each.
_PAUSE_S = 0.001
_PAGE = 2000  # rows of the tree read at once (SQLite reads them on the event loop)
_TABLE: Table = Unit.__table__  # type: ignore[attr-defined]
_ROWS = (select(col(Unit.id), col(Unit.code), col(Unit.name), col(Unit.name_folded), col(Unit.level),
                col(Unit.parent_id), col(Unit.path), col(Unit.depth), col(Unit.mailboxes), col(Unit.has_seal))
         .where(col(Unit.code) > bindparam("after")).order_by(col(Unit.code)).limit(_PAGE))
_FIELDS = ("name", "name_folded", "level", "mailboxes", "has_seal")  # what an import changes in place
_UPDATE = update(Unit).where(col(Unit.id) == bindparam("uid")).values(
    {name: bindparam(f"new_{name}") for name in _FIELDS})


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int


@dataclass(slots=True, eq=False)  # one object per unit: compared by identity
class _Node:
    """A unit as the import sees it: stored, or created by this import."""

    id: str
    code: str
    name: str
    name_folded: str
    level: str
    parent_id: str | None
    path: str
    depth: int
    mailboxes: list[str]
    has_seal: bool


@dataclass
class _Tree:
    """The tree in memory while a file is imported, and the writes not yet sent."""

    session: AsyncSession
    nodes: dict[str, _Node]  # by code
    children: dict[str | None, list[_Node]] = field(default_factory=dict)
    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    changed: dict[str, _Node] = field(default_factory=dict)  # updated units, by id
    sealed_names: dict[str, _Node] = field(default_factory=dict)  # units given a seal or a new name, by id

    def __post_init__(self) -> None:
        for node in self.nodes.values():
            self.children.setdefault(node.parent_id, []).append(node)

    async def write(self) -> None:
        """Send the inserts and updates held so far (parents were held before their children)."""
        inserts, self.inserts = self.inserts, []
        updates, self.updates = self.updates, []
        await bulk_insert(self.session, _TABLE, inserts)
        await driver.execute_many(self.session, _UPDATE, updates)


async def import_tree(session: AsyncSession, specs: list[UnitSpec], scope: Unit | None = None, *,
                      actor_id: str | None = None) -> ImportResult:
    """Create or update every unit of ``specs`` (matched by code), parents first.

    Existing units keep their id (and so their documents) when renamed or moved.
    With ``scope`` (an admin's own unit) the import stays inside its subtree: every
    unit written and every parent named lies there, and ``scope`` itself keeps its
    place, name, level and seal (its mailboxes the admin may change); without it (the
    operator's CLI) the whole tree is open.
    Raises InvalidTreeError (missing or out-of-scope parent, cycle, too deep),
    OwnUnitError (a change to ``scope``'s name, level or seal), UnitCodeTakenError (a
    code used outside ``scope``) and SealNameTakenError (a unit with a seal given the name
    of another that has one, anywhere in the tree or in the file); the caller's rollback
    then leaves the tree as it was.
    Audited as one entry, by ``actor_id`` (None: the operator's command line).
    """
    await lock_tree(session)  # again if the caller took it: the lock is re-entrant
    await session.flush()  # what the session holds unsent is read back as rows
    tree = _Tree(session, await _read_tree(session))
    # Checking and ordering 50,000 units is CPU work: on a thread, while nothing else changes the tree.
    ordered, known = await asyncio.to_thread(_plan, specs, tree.nodes, scope.id if scope else None)
    created = updated = 0
    for count, spec in enumerate(ordered, 1):
        node = tree.nodes.get(spec.code)
        parent = known.get(spec.parent_code) if spec.parent_code else None
        if node is None:
            known[spec.code] = _create(tree, spec, parent)
            created += 1
        else:
            move = not spec.keeps_parent and (scope is None or node.id != scope.id)
            await _update(tree, node, spec, parent if move else None, move=move)
            updated += 1
        if count % _CHUNK == 0:
            await tree.write()
            await asyncio.sleep(_PAUSE_S)  # other requests' turn
    await tree.write()
    # Once written, so that a namesake in the same file is found too.
    await check_seal_names(session, {node.id: node.name for node in tree.sealed_names.values() if node.has_seal})
    _patch_loaded(session, tree.changed)
    codes = [s.code for s in specs]
    await audit.append(session, action="units.imported", actor_id=actor_id, unit_id=scope.id if scope else None,
                       data={"created": created, "updated": updated, "codes": codes[:_CODES_AUDITED],
                             "more": max(0, len(codes) - _CODES_AUDITED)})
    return ImportResult(created, updated)


async def _read_tree(session: AsyncSession) -> dict[str, _Node]:
    """Every unit, by code, a page at a time (the caller holds the tree's lock)."""
    nodes: dict[str, _Node] = {}
    after = ""
    while True:
        rows = await driver.fetch(session, _ROWS, {"after": after})
        nodes.update((row[1], _Node(*row)) for row in rows)
        if len(rows) < _PAGE:
            return nodes
        after = rows[-1][1]


def _plan(specs: list[UnitSpec], nodes: dict[str, _Node],
          scope_id: str | None) -> tuple[list[UnitSpec], dict[str, _Node]]:
    """``specs`` checked against the scope (the unit ``scope_id``) and put parents first, and the
    units they may name as parents. Plain data only: it runs on a worker thread.
    Raises InvalidTreeError, OwnUnitError, UnitCodeTakenError."""
    scope = next((n for n in nodes.values() if n.id == scope_id), None)
    if scope_id is not None and scope is None:  # removed since the admin's token was checked
        raise UnitNotFoundError("your unit no longer exists")
    if scope is not None:
        specs = _check_scope(specs, nodes, scope)
    # Units outside the scope are not parents to offer: unknown and out-of-scope look alike.
    known = nodes if scope is None else {c: n for c, n in nodes.items() if n.path.startswith(scope.path)}
    return _parents_first(specs, known, "known" if scope is None else "in your part of the tree"), known


def _check_scope(specs: list[UnitSpec], nodes: dict[str, _Node], scope: _Node) -> list[UnitSpec]:
    """``specs`` if they stay in ``scope``'s subtree, with ``scope``'s own entry pinned where it
    stands (its parent, checked to be its own, lies outside the part the file may name)."""
    parent_code = next((n.code for n in nodes.values() if n.id == scope.parent_id), None)
    for spec in specs:
        node = nodes.get(spec.code)
        if node is not None and not node.path.startswith(scope.path):
            # Codes are unique across the tree, so "taken" is all that can be said.
            raise UnitCodeTakenError(f"unit code {spec.code} is already taken by a unit outside your part "
                                     "of the tree; choose another code")
        if node is not None and node.id == scope.id:
            _check_own_unit(spec, node, parent_code)
        elif not spec.parent_code and not (spec.keeps_parent and node is not None):
            raise InvalidTreeError(f"unit {spec.code} has no parent; imported units go under your unit {scope.code}")
    return [replace(s, parent_code=None, keeps_parent=True) if s.code == scope.code else s for s in specs]


def _check_own_unit(spec: UnitSpec, own: _Node, parent_code: str | None) -> None:
    """The admin's own unit may stand in its file (an export of its part holds it) as it is."""
    if spec.parent_code and spec.parent_code != parent_code:
        where = f"its parent_code as it is ({parent_code})" if parent_code else "its parent_code empty"
        raise InvalidTreeError(f"unit {spec.code} is your own unit: it keeps its place in the tree (leave {where})")
    changed = [k for k, new, old in (("name", spec.name, own.name), ("level", spec.level, own.level),
                                     ("seal", spec.has_seal, own.has_seal)) if new is not None and new != old]
    if changed:
        raise own_unit_refusal(spec.code, changed, parent_code)


def _parents_first(specs: list[UnitSpec], known: dict[str, Any], where: str) -> list[UnitSpec]:
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


def _parent_spec(spec: UnitSpec, by_code: dict[str, UnitSpec], known: dict[str, Any],
                 where: str) -> UnitSpec | None:
    """The parent's entry in the file; None when there is none (a root, or a parent already stored)."""
    parent = spec.parent_code
    if parent and parent in by_code:
        return by_code[parent]
    if parent and parent not in known:
        raise InvalidTreeError(f"unit {spec.code}: parent {parent} is neither in the file nor {where}")
    return None


def _create(tree: _Tree, spec: UnitSpec, parent: _Node | None) -> _Node:
    if parent is not None and parent.depth + 1 > MAX_DEPTH:
        raise InvalidTreeError(f"unit {spec.code} would be level {parent.depth + 2} of the tree; "
                               f"a unit tree has at most {MAX_LEVELS} levels")
    unit_id = new_id()
    node = _Node(unit_id, spec.code, spec.name, name_key(spec.name), spec.level, parent.id if parent else None,
                 (parent.path if parent else "/") + unit_id + "/", parent.depth + 1 if parent else 0,
                 list(spec.mailboxes or ()), bool(spec.has_seal))
    tree.inserts.append({"id": node.id, "code": node.code, "name": node.name, "name_folded": node.name_folded,
                         "level": node.level, "parent_id": node.parent_id, "path": node.path, "depth": node.depth,
                         "mailboxes": node.mailboxes, "has_seal": node.has_seal, "seal_image_sha": None,
                         "created_at": utcnow()})
    tree.nodes[node.code] = node
    tree.children.setdefault(node.parent_id, []).append(node)
    if node.has_seal:
        tree.sealed_names[node.id] = node
    return node


async def _update(tree: _Tree, node: _Node, spec: UnitSpec, parent: _Node | None, *, move: bool) -> None:
    values = {"name": spec.name, "name_folded": name_key(spec.name), "level": spec.level,
              "mailboxes": node.mailboxes if spec.mailboxes is None else spec.mailboxes,
              "has_seal": node.has_seal if spec.has_seal is None else spec.has_seal}
    if any(getattr(node, k) != v for k, v in values.items()):
        if node.name != values["name"] or (values["has_seal"] and not node.has_seal):
            tree.sealed_names[node.id] = node
        for k, v in values.items():
            setattr(node, k, v)
        tree.updates.append({"uid": node.id, **{f"new_{k}": v for k, v in values.items()}})
        tree.changed[node.id] = node
    if move and (parent.id if parent else None) != node.parent_id:
        await tree.write()  # the move's UPDATE reaches the units created below it so far
        await _move(tree, node, parent)


async def _move(tree: _Tree, node: _Node, parent: _Node | None) -> None:
    old_prefix, new_prefix, delta = await reparent(tree.session, node, parent)
    tree.children[node.parent_id].remove(node)
    node.parent_id = parent.id if parent else None
    tree.children.setdefault(node.parent_id, []).append(node)
    todo = [node]
    while todo:  # the subtree, not the whole tree: a file may move hundreds of units
        below = todo.pop()
        below.path, below.depth = new_prefix + below.path[len(old_prefix):], below.depth + delta
        todo.extend(tree.children.get(below.id, ()))


def _patch_loaded(session: AsyncSession, changed: dict[str, _Node]) -> None:
    # The bulk UPDATEs bypassed the identity map: units the session holds (the admin's own)
    # get the values written, without being marked dirty.
    for obj in list(session.identity_map.values()):
        node = changed.get(obj.id) if isinstance(obj, Unit) else None
        for name in _FIELDS if node is not None else ():
            set_committed_value(obj, name, getattr(node, name))
