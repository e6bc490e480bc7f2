"""Append to, read and verify the hash-chained audit log."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Insert, and_, bindparam, case, event, insert, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.util import await_
from sqlmodel import col

from service.audit.models import AuditEntry, AuditHead
from service.storage import driver
from service.storage.db import ServiceSession
from service.storage.types import utcnow

log = logging.getLogger(__name__)

__all__ = ["ChainReport", "PendingEntry", "append", "entry_hash", "history", "verify_chain"]

GENESIS = "0" * 64


def entry_hash(entry: AuditEntry | PendingEntry) -> str:
    """SHA-256 over the previous hash and every field of the entry."""
    content = {
        "seq": entry.seq,
        "at": entry.at.isoformat(),
        "actor_id": entry.actor_id,
        "unit_id": entry.unit_id,
        "action": entry.action,
        "document_id": entry.document_id,
        "object_id": entry.object_id,
        "data": entry.data,
        "prev_hash": entry.prev_hash,
    }
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class PendingEntry:
    """An action recorded in a transaction, chained when the transaction commits."""

    at: datetime
    actor_id: str | None
    unit_id: str | None
    action: str
    document_id: str | None
    object_id: str | None
    data: dict[str, Any]
    seq: int = 0
    prev_hash: str = ""
    hash: str = ""

    def row(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "actor_id": self.actor_id, "unit_id": self.unit_id,
                "action": self.action, "document_id": self.document_id, "object_id": self.object_id,
                "data": self.data, "prev_hash": self.prev_hash, "hash": self.hash}


_PENDING = "audit_pending"


async def append(
    session: AsyncSession,
    *,
    action: str,
    actor_id: str | None = None,
    unit_id: str | None = None,
    document_id: str | None = None,
    object_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> PendingEntry:
    """Record one action in the caller's transaction.

    The entry is chained (sequence number, previous hash, own hash) when the
    transaction commits: the chain's head is locked only for that moment, not for
    the whole request, and a rolled-back transaction leaves no entry.
    """
    entry = PendingEntry(utcnow(), actor_id, unit_id, action, document_id, object_id, data or {})
    session.sync_session.info.setdefault(_PENDING, []).append(entry)
    return entry


_HEAD = AuditHead.__table__  # type: ignore[attr-defined]
_ENTRY = AuditEntry.__table__  # type: ignore[attr-defined]
_LOCK_HEAD = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1).with_for_update()
_MOVE_HEAD = update(_HEAD).where(_HEAD.c.id == 1).values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
_ADD_ENTRIES = insert(_ENTRY)

# The head this process last wrote or read, per database (PostgreSQL). While no other
# process appends, it is still the head, and a transaction's entries are chained onto it
# in one statement (below) instead of three (lock and read the head, insert, move it).
_KNOWN_HEADS: weakref.WeakKeyDictionary[Engine, tuple[int, str]] = weakref.WeakKeyDictionary()
_AT_ONCE = 4  # entries chained in that one statement (a request makes one or two)
_appends: dict[int, Insert] = {}
# Requests of one process chain their entries one after the other, from this process's
# known head to its commit. Left to PostgreSQL, requests committing together would reach
# the head row in any order, find it elsewhere than they expected, and fall back to the
# locked read. The turn is only an ordering: the chain's integrity rests on the head row
# (a turn not had within this time is not waited for any longer).
_TURNS: weakref.WeakKeyDictionary[Engine, tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = (
    weakref.WeakKeyDictionary())
_TURN_WAIT_S = 10.0
_TURN = "audit_turn"  # session.info key: the turn this session holds until its transaction ends


def _append_at(count: int) -> Insert:
    """Move the head from (old_seq, old_hash) to (new_seq, new_hash) and insert ``count``
    entries, all in one statement; if the head is elsewhere, no entry is inserted.

    The UPDATE takes the head row's lock as the locked read does, and waits as it does
    for a transaction that moved the head but has not committed yet; the CASE then sees
    the head as that one left it. An UPDATE that only matched on ``seq`` and ``hash``
    would instead skip the row as the statement's snapshot shows it (not waiting), and
    fall back whenever two requests commit close together.
    """
    statement = _appends.get(count)
    if statement is None:
        there = and_(_HEAD.c.seq == bindparam("old_seq"), _HEAD.c.hash == bindparam("old_hash"))
        moved = (update(_HEAD)
                 .where(_HEAD.c.id == 1)
                 .values(seq=case((there, bindparam("new_seq")), else_=_HEAD.c.seq),
                         hash=case((there, bindparam("new_hash")), else_=_HEAD.c.hash))
                 .returning(_HEAD.c.seq, _HEAD.c.hash)
                 .cte("moved"))
        did_move = and_(moved.c.seq == bindparam("new_seq"), moved.c.hash == bindparam("new_hash"))
        rows = [select(*(bindparam(f"{c.name}_{n}", type_=c.type) for c in _ENTRY.c)).where(did_move)
                for n in range(count)]
        source = union_all(*rows) if count > 1 else rows[0]
        statement = _appends[count] = (insert(_ENTRY)
                                       .from_select([c.name for c in _ENTRY.c], source)
                                       .add_cte(moved)
                                       .returning(_ENTRY.c.seq))
    return statement


def _chain(pending: list[PendingEntry], seq: int, prev: str) -> tuple[int, str]:
    for entry in pending:
        seq += 1
        entry.seq, entry.prev_hash = seq, prev
        entry.hash = prev = entry_hash(entry)
    return seq, prev


def _append_at_known_head(conn: Connection, pending: list[PendingEntry]) -> bool:
    """One statement, if this process's last known head is still the head; else False."""
    known = _KNOWN_HEADS.get(conn.engine)
    if known is None or len(pending) > _AT_ONCE:
        return False
    new_seq, new_hash = _chain(pending, *known)
    params: dict[str, Any] = {"old_seq": known[0], "old_hash": known[1], "new_seq": new_seq, "new_hash": new_hash}
    for n, entry in enumerate(pending):
        params.update({f"{name}_{n}": value for name, value in entry.row().items()})
    # Known before the statement even runs: a request of this process that commits at the
    # same moment chains onto this one (its UPDATE waits for this transaction's lock) instead
    # of onto the same head as this one. A wrong guess costs a fallback, never a fork: the
    # CASE compares with the head as committed.
    _KNOWN_HEADS[conn.engine] = new_seq, new_hash
    if driver.fetch_now(conn, _append_at(len(pending)), params):
        return True
    # Another process appended meanwhile, or a transaction this one chained onto rolled
    # back: the locked read follows (this transaction holds the head row's lock already).
    return False


@event.listens_for(ServiceSession, "before_commit")
def _chain_pending(session: Session) -> None:
    # Statements built once and sent to the driver: this runs in every writing transaction.
    pending: list[PendingEntry] = session.info.pop(_PENDING, [])
    if not pending:
        return
    conn = session.connection()
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        # The transaction's own writes first: waiting for the turn while holding row locks
        # another waiter's flush needs would be a deadlock PostgreSQL cannot see.
        session.flush()
        _take_turn(session, conn.engine)
        if _append_at_known_head(conn, pending):
            return
    head = driver.fetch_now(conn, _LOCK_HEAD, {})
    if not head:
        conn.execute(insert(_HEAD).values(id=1, seq=0, hash=GENESIS))
        seq, prev = 0, GENESIS
    else:
        seq, prev = head[0]
    seq, prev = _chain(pending, seq, prev)
    driver.execute_now(conn, _ADD_ENTRIES, [entry.row() for entry in pending])
    driver.execute_now(conn, _MOVE_HEAD, [{"new_seq": seq, "new_hash": prev}])
    if postgres:
        _KNOWN_HEADS[conn.engine] = seq, prev


def _take_turn(session: Session, engine: Engine) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # a synchronous session: nothing to order it with
        return
    held = _TURNS.get(engine)
    if held is None or held[0] is not loop:
        held = _TURNS[engine] = loop, asyncio.Lock()
    lock = held[1]
    try:
        await_(asyncio.wait_for(lock.acquire(), _TURN_WAIT_S))
    except TimeoutError:
        log.warning("audit chain: no turn after %.0f s; appending without one", _TURN_WAIT_S)
        return
    session.info[_TURN] = lock


@event.listens_for(ServiceSession, "after_transaction_end")
def _end_turn(session: Session, _transaction: SessionTransaction) -> None:
    lock = session.info.pop(_TURN, None)
    if lock is not None:
        lock.release()


@event.listens_for(ServiceSession, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


async def history(session: AsyncSession, document_id: str) -> list[AuditEntry]:
    stmt = select(AuditEntry).where(col(AuditEntry.document_id) == document_id).order_by(col(AuditEntry.seq))
    return list((await session.execute(stmt)).scalars())


@dataclass(frozen=True)
class ChainReport:
    """The outcome of walking the chain from the first entry to the head."""

    ok: bool
    entries: int
    first_broken_seq: int | None = None
    reason: str = ""


async def verify_chain(session: AsyncSession, batch: int = 5000) -> ChainReport:
    """Recompute every hash; report the first altered, missing or reordered entry."""
    prev_hash, expected_seq, count, last = GENESIS, 1, 0, 0
    while True:
        stmt = select(AuditEntry).where(col(AuditEntry.seq) > last).order_by(col(AuditEntry.seq)).limit(batch)
        rows = list((await session.execute(stmt)).scalars())
        if not rows:
            break
        for entry in rows:
            problem = _check(entry, expected_seq, prev_hash)
            if problem:
                return ChainReport(False, count, min(entry.seq, expected_seq), problem)
            prev_hash, expected_seq, count, last = entry.hash, entry.seq + 1, count + 1, entry.seq
    head = (await session.execute(select(AuditHead).where(col(AuditHead.id) == 1))).scalar_one_or_none()
    if head is not None and (head.seq != last or head.hash != prev_hash):
        return ChainReport(False, count, last + 1, f"entries after #{last} are missing (head is #{head.seq})")
    return ChainReport(True, count)


def _check(entry: AuditEntry, expected_seq: int, prev_hash: str) -> str:
    if entry.seq != expected_seq:
        return f"entry #{expected_seq} is missing (next present is #{entry.seq})"
    if entry.prev_hash != prev_hash:
        return f"entry #{entry.seq} does not continue the chain (previous hash differs)"
    if entry_hash(entry) != entry.hash:
        return f"entry #{entry.seq} was altered after it was written (hash mismatch)"
    return ""
