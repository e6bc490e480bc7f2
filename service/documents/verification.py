"""Verification reports of documents: on sending (so every recipient has one on
arrival), on demand, and for any PDF an auditor brings."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service import audit
from service.auth import Principal
from service.documents.access import DocumentNotFoundError, visible_select
from service.documents.blobs import BlobStore
from service.documents.models import Document, VerificationRecord
from service.documents.registry import replay_or_run
from service.documents.sending import Sendable, send_document, take_turn
from service.routing import RecipientSelector, RoutingPolicy
from service.storage import driver
from service.storage.db import Database, is_sqlite
from service.storage.rows import construct, insert_rows

if TYPE_CHECKING:
    from service.signing import VerificationReport
    from service.signing.runtime import SigningRuntime

__all__ = ["Precomputed", "document_verification", "record_verification", "send_verified"]


class Precomputed(NamedTuple):
    """A report computed before the document was loaded for writing."""

    sha256: str
    report: VerificationReport
    # No report of these bytes was there when the document was read in this transaction
    # (SQLite: the write lock is still held, so none can appear; PostgreSQL: a concurrent
    # request may record one meanwhile, so record_verification looks again under a lock).
    unseen: bool


_RECORD = VerificationRecord.__table__  # type: ignore[attr-defined]
# A report counts when it is of these bytes and made under the verdict rules in force;
# the newest of older rules is what a new report supersedes.
_KNOWN = (select(*_RECORD.columns).where(_RECORD.c.document_id == bindparam("doc_id"),
                                         _RECORD.c.sha256 == bindparam("sha256"))
          .order_by((_RECORD.c.rules_version == bindparam("rules")).desc(), _RECORD.c.created_at.desc()).limit(1))
# The newest verdict rules a report of the document's current bytes was made under (None: no report).
_REPORTED_UNDER = (select(func.max(col(VerificationRecord.rules_version)))
                   .where(col(VerificationRecord.document_id) == col(Document.id),
                          col(VerificationRecord.sha256) == col(Document.sha256)).scalar_subquery())


async def _known(session: AsyncSession, doc_id: str, sha256: str, rules: int) -> VerificationRecord | None:
    """The report of these bytes under ``rules``, else the latest one of older rules."""
    # A detached record: callers only read it.
    for row in await driver.fetch(session, _KNOWN, {"doc_id": doc_id, "sha256": sha256, "rules": rules}):
        return VerificationRecord.model_construct(**dict(zip(_RECORD.columns.keys(), row, strict=True)))
    return None


async def _verify_before_writing(session: AsyncSession, db: Database, sha: str, runtime: SigningRuntime,
                                 blobs: BlobStore) -> tuple[Precomputed, bool]:
    """The report of the file ``sha``, made before the session writes anything, and
    whether the session's transaction was given back (what it read must be read again).

    A file this process has just stored, with no signature value in it, is reported at
    once from the scan its upload made. Any other verification (the pool: up to seconds)
    runs unlocked: on SQLite, where the first statement of a transaction takes the write
    lock, the session gives it back first and the caller's next statement begins a new
    transaction; on PostgreSQL a SELECT takes no lock.
    """
    scan = blobs.scan_of(sha)
    sqlite = is_sqlite(db.url)
    released = sqlite and (scan is None or scan.byte_ranges > 0)
    if released:
        await session.rollback()
    return Precomputed(sha, await runtime.verify(blobs.path(sha), scan), not released), released


async def record_verification(session: AsyncSession, doc: Sendable, runtime: SigningRuntime,
                              blobs: BlobStore, precomputed: Precomputed | None = None, *,
                              exclusive: bool = False) -> VerificationRecord:
    """The report of the document's current bytes, computed and recorded once per version
    and verdict rules.

    ``exclusive`` (reading the report, exporting the evidence): a report already there is
    read without waiting for anyone; one to record is recorded once, however many requests
    want it at the same moment (PostgreSQL: they take turns on the document's row, as sends
    and recalls do, and look again; a send calls this with its turn already taken).
    """
    ready = precomputed if precomputed is not None and precomputed.sha256 == doc.sha256 else None
    found = None
    if ready is None or not ready.unseen:
        found = await _known(session, doc.id, doc.sha256, runtime.rules_version)
    if (found is None or found.rules_version != runtime.rules_version) and exclusive \
            and driver.dialect_of(session) != "sqlite":
        # Wait for any transaction recording a report of this document: it has committed when
        # the turn is ours, and the SELECT below (read committed) sees its report.
        await take_turn(session, doc.id)
        found = await _known(session, doc.id, doc.sha256, runtime.rules_version)
    if found is not None and found.rules_version == runtime.rules_version:
        return found
    report = ready.report if ready is not None else await runtime.verify(blobs.path(doc.sha256))
    data = report.to_dict()
    record = construct(VerificationRecord, document_id=doc.id, sha256=doc.sha256, verdict=str(report.verdict),
                       rules_version=report.rules_version, report=data)
    await insert_rows(session, [record], held=True)  # nothing here waits for it: it goes with the commit
    await audit.append(session, action="document.verified", unit_id=doc.sender_unit_id, document_id=doc.id,
                       object_id=record.id, data=_audited(record, found))
    return record


def _audited(record: VerificationRecord, stale: VerificationRecord | None) -> dict[str, Any]:
    data = {"sha256": record.sha256, "verdict": record.verdict, "rules_version": record.rules_version,
            "signatures": len(record.report.get("signatures", []))}
    if stale is not None:  # what an auditor defending the old verdict must know: it was replaced, and why
        data |= {"supersedes": stale.id, "previous_verdict": stale.verdict,
                 "previous_rules_version": stale.rules_version}
    return data


async def document_verification(session: AsyncSession, db: Database, principal: Principal, doc_id: str,
                                runtime: SigningRuntime, blobs: BlobStore) -> VerificationRecord:
    """Raises DocumentNotFoundError."""
    doc, precomputed = await _verified_current(session, db, principal, doc_id, runtime, blobs)
    return await record_verification(session, doc, runtime, blobs, precomputed, exclusive=True)


class _ToSend(NamedTuple):
    """The columns sending and recording a report read (``Sendable``), and whether these
    bytes have a report."""

    id: str
    sender_unit_id: str
    sha256: str
    sent_at: datetime | None
    urgency: int
    number_notation: str
    subject: str
    doc_type: str
    deadline: date | None
    reported_under: int | None  # the newest verdict rules its current bytes were reported under


_TO_SEND = (col(Document.id), col(Document.sender_unit_id), col(Document.sha256), col(Document.sent_at),
            col(Document.urgency), col(Document.number_notation), col(Document.subject), col(Document.doc_type),
            col(Document.deadline), _REPORTED_UNDER)


async def _to_send(session: AsyncSession, principal: Principal, doc_id: str) -> _ToSend:
    """One statement instead of an ORM object: only these are read. Raises DocumentNotFoundError."""
    stmt, params = visible_select(principal, doc_id, *_TO_SEND)
    rows = await driver.fetch(session, stmt, params)
    if not rows:
        raise DocumentNotFoundError("no such document in your unit")
    return _ToSend(*rows[0])


async def _verified_current(session: AsyncSession, db: Database, principal: Principal, doc_id: str,
                            runtime: SigningRuntime, blobs: BlobStore) -> tuple[_ToSend, Precomputed | None]:
    """The document as it is now, and a report of its bytes made before anything is written
    (None when one exists already). Raises DocumentNotFoundError."""
    doc = await _to_send(session, principal, doc_id)
    if doc.reported_under == runtime.rules_version:
        return doc, None
    precomputed, released = await _verify_before_writing(session, db, doc.sha256, runtime, blobs)
    if released:  # the transaction was given back: read it again
        doc = await _to_send(session, principal, doc_id)
    if doc.reported_under is not None:  # a report of older rules: the new one is recorded as replacing it
        precomputed = precomputed._replace(unseen=False)
    return doc, precomputed


async def send_verified(session: AsyncSession, db: Database, principal: Principal, doc_id: str,
                        selectors: list[RecipientSelector], policy: RoutingPolicy, runtime: SigningRuntime | None,
                        blobs: BlobStore, idempotency_key: str | None = None,
                        fingerprint: str = "") -> tuple[dict[str, Any], bool]:
    """Verify the document (when a runtime is given) before ``session`` writes anything,
    then send it — once per Idempotency-Key — with the verdict in every arrival notice.

    Returns the answer and whether it is a replay. Raises what send_document raises.
    """
    if runtime is None:
        doc, precomputed = await _to_send(session, principal, doc_id), None
    else:
        doc, precomputed = await _verified_current(session, db, principal, doc_id, runtime, blobs)

    async def run() -> dict[str, Any]:
        # The document's turn first: a recall at the same moment sees these deliveries or runs
        # before them, and a report recorded meanwhile by a reader is found, not made twice.
        await take_turn(session, doc.id)
        notice: dict[str, Any] = {}
        if runtime is not None:
            ready = precomputed
            if ready is not None and driver.dialect_of(session) != "sqlite":
                ready = ready._replace(unseen=False)  # PostgreSQL: a reader may have recorded one; look again
            record = await record_verification(session, doc, runtime, blobs, ready)
            notice = {"verdict": record.verdict}
        result = await send_document(session, principal, doc, selectors, policy, notice)
        return {"document_id": result.document_id, "created": result.created, "already_sent": result.already_sent}

    return await replay_or_run(session, principal, idempotency_key, fingerprint, run)
