"""Append to, read and verify the hash-chained audit log."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlmodel import col

from service.audit.models import AuditEntry, AuditHead
from service.storage.db import ServiceSession
from service.storage.types import utcnow

__all__ = ["ChainReport", "append", "entry_hash", "history", "verify_chain"]

GENESIS = "0" * 64


def entry_hash(entry: AuditEntry) -> str:
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
) -> AuditEntry:
    """Record one action in the caller's transaction.

    The entry is chained (sequence number, previous hash, own hash) when the
    transaction commits: the chain's head is locked only for that moment, not for
    the whole request, and a rolled-back transaction leaves no entry.
    """
    entry = AuditEntry(seq=0, at=utcnow(), actor_id=actor_id, unit_id=unit_id, action=action,
                       document_id=document_id, object_id=object_id, data=data or {}, prev_hash="", hash="")
    session.sync_session.info.setdefault(_PENDING, []).append(entry)
    return entry


def _lock_head(session: Session) -> AuditHead:
    stmt = select(AuditHead).where(col(AuditHead.id) == 1).with_for_update()
    head = session.execute(stmt).scalar_one_or_none()
    if head is None:
        head = AuditHead(id=1, seq=0, hash=GENESIS)
        session.add(head)
        session.flush()
    return head


@event.listens_for(ServiceSession, "before_commit")
def _chain_pending(session: Session) -> None:
    pending: list[AuditEntry] = session.info.pop(_PENDING, [])
    if not pending:
        return
    head = _lock_head(session)
    for entry in pending:
        entry.seq, entry.prev_hash = head.seq + 1, head.hash
        entry.hash = entry_hash(entry)
        head.seq, head.hash = entry.seq, entry.hash
        session.add(entry)
    session.flush()


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
