"""Append to, read and verify the hash-chained audit log."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlmodel import col

from service.audit.models import AuditEntry, AuditHead
from service.storage import driver
from service.storage.db import ServiceSession
from service.storage.types import utcnow

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
_LOCK_HEAD = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1).with_for_update()
_MOVE_HEAD = update(_HEAD).where(_HEAD.c.id == 1).values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
_ADD_ENTRIES = insert(AuditEntry.__table__)  # type: ignore[attr-defined]


@event.listens_for(ServiceSession, "before_commit")
def _chain_pending(session: Session) -> None:
    # Statements built once and sent to the driver: this runs in every writing transaction.
    pending: list[PendingEntry] = session.info.pop(_PENDING, [])
    if not pending:
        return
    conn = session.connection()
    head = driver.fetch_now(conn, _LOCK_HEAD, {})
    if not head:
        conn.execute(insert(_HEAD).values(id=1, seq=0, hash=GENESIS))
        seq, prev = 0, GENESIS
    else:
        seq, prev = head[0]
    for entry in pending:
        seq += 1
        entry.seq, entry.prev_hash = seq, prev
        entry.hash = prev = entry_hash(entry)
    driver.execute_now(conn, _ADD_ENTRIES, [entry.row() for entry in pending])
    driver.execute_now(conn, _MOVE_HEAD, [{"new_seq": seq, "new_hash": prev}])


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
