"""Verification reports of documents: on sending (so every recipient has one on
arrival), on demand, and for any PDF an auditor brings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service import audit
from service.auth import Principal
from service.documents.access import DocumentNotFoundError, visible_document, visible_select
from service.documents.blobs import BlobStore
from service.documents.models import Document, VerificationRecord
from service.documents.registry import replay_or_run
from service.documents.sending import send_document
from service.routing import RecipientSelector, RoutingPolicy
from service.storage import driver
from service.storage.db import Database, is_sqlite
from service.storage.rows import insert_rows

if TYPE_CHECKING:
    from service.signing import VerificationReport
    from service.signing.runtime import SigningRuntime

__all__ = ["Precomputed", "document_verification", "record_verification", "send_verified", "verify_unlocked"]


class Precomputed(NamedTuple):
    """A report computed before the document was loaded for writing."""

    sha256: str
    report: VerificationReport
    unseen: bool  # no report of this version can exist: read and verified under a write lock still held


_KNOWN = select(VerificationRecord).where(col(VerificationRecord.document_id) == bindparam("doc_id"),
                                          col(VerificationRecord.sha256) == bindparam("sha256"))
_REPORTED = exists().where(col(VerificationRecord.document_id) == col(Document.id),
                           col(VerificationRecord.sha256) == col(Document.sha256))


async def _known(session: AsyncSession, doc_id: str, sha256: str) -> VerificationRecord | None:
    return (await session.execute(_KNOWN, {"doc_id": doc_id, "sha256": sha256})).scalars().first()


async def verify_unlocked(session: AsyncSession, db: Database, principal: Principal, doc_id: str,
                          runtime: SigningRuntime, blobs: BlobStore) -> Precomputed | None:
    """Verify the document's current file, never holding a lock while a verification takes long.

    The read runs in the caller's session. A file this process has just stored, with no
    signature value in it, is reported at once from the scan its upload made. Any other
    verification (the pool: up to seconds) runs unlocked: on SQLite, where the first
    statement of a transaction takes the write lock, the session gives it back first and
    the caller's next statement begins a new transaction; on PostgreSQL a SELECT takes no lock.

    None when a report of that version exists already. Raises DocumentNotFoundError.
    """
    stmt, params = visible_select(principal, doc_id, col(Document.sha256), _REPORTED)
    rows = await driver.fetch(session, stmt, params)
    if not rows:
        raise DocumentNotFoundError("no such document in your unit")
    sha, known = rows[0]
    if known:
        return None
    scan = blobs.scan_of(sha)
    held = is_sqlite(db.url)
    if held and (scan is None or scan.byte_ranges):
        await session.rollback()
        held = False
    return Precomputed(sha, await runtime.verify(blobs.path(sha), scan), held)


async def record_verification(session: AsyncSession, doc: Document, runtime: SigningRuntime,
                              blobs: BlobStore, precomputed: Precomputed | None = None) -> VerificationRecord:
    """The report of the document's current bytes, computed once per version."""
    ready = precomputed if precomputed is not None and precomputed.sha256 == doc.sha256 else None
    if ready is None or not ready.unseen:
        found = await _known(session, doc.id, doc.sha256)
        if found is not None:
            return found
    report = ready.report if ready is not None else await runtime.verify(blobs.path(doc.sha256))
    data = report.to_dict()
    record = VerificationRecord(document_id=doc.id, sha256=doc.sha256, verdict=str(report.verdict), report=data)
    await insert_rows(session, [record])
    await audit.append(session, action="document.verified", unit_id=doc.sender_unit_id, document_id=doc.id,
                       object_id=record.id, data={"sha256": doc.sha256, "verdict": record.verdict,
                                                  "signatures": len(data.get("signatures", []))})
    return record


async def document_verification(session: AsyncSession, db: Database, principal: Principal, doc_id: str,
                                runtime: SigningRuntime, blobs: BlobStore) -> VerificationRecord:
    """Raises DocumentNotFoundError."""
    precomputed = await verify_unlocked(session, db, principal, doc_id, runtime, blobs)
    doc = await visible_document(session, principal, doc_id)
    return await record_verification(session, doc, runtime, blobs, precomputed)


async def send_verified(session: AsyncSession, db: Database, principal: Principal, doc_id: str,
                        selectors: list[RecipientSelector], policy: RoutingPolicy, runtime: SigningRuntime | None,
                        blobs: BlobStore, idempotency_key: str | None = None,
                        fingerprint: str = "") -> tuple[dict[str, Any], bool]:
    """Verify the document (when a runtime is given) before ``session`` takes any lock,
    then send it — once per Idempotency-Key — with the verdict in every arrival notice.

    Returns the answer and whether it is a replay. Raises what send_document raises.
    """
    precomputed = await verify_unlocked(session, db, principal, doc_id, runtime, blobs) if runtime else None

    async def run() -> dict[str, Any]:
        notice: dict[str, Any] = {}
        doc = await visible_document(session, principal, doc_id)
        if runtime is not None:
            record = await record_verification(session, doc, runtime, blobs, precomputed)
            notice = {"verdict": record.verdict}
        result = await send_document(session, principal, doc, selectors, policy, notice)
        return {"document_id": result.document_id, "created": result.created, "already_sent": result.already_sent}

    return await replay_or_run(session, principal, idempotency_key, fingerprint, run)
