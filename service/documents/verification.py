"""Verification reports of documents: on sending (so every recipient has one on
arrival), on demand, and for any PDF an auditor brings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service import audit
from service.auth import Principal
from service.documents.access import visible_document
from service.documents.blobs import BlobStore
from service.documents.models import Document, VerificationRecord
from service.documents.sending import SendResult, send_document
from service.routing import RecipientSelector, RoutingPolicy
from service.signing.runtime import SigningRuntime

__all__ = ["document_verification", "record_verification", "send_verified"]


async def record_verification(session: AsyncSession, doc: Document, runtime: SigningRuntime,
                              blobs: BlobStore) -> VerificationRecord:
    """The report of the document's current bytes, computed once per version."""
    stmt = select(VerificationRecord).where(col(VerificationRecord.document_id) == doc.id,
                                            col(VerificationRecord.sha256) == doc.sha256)
    found = (await session.execute(stmt)).scalars().first()
    if found is not None:
        return found
    report = await runtime.verify(blobs.path(doc.sha256))
    data = report.to_dict()
    record = VerificationRecord(document_id=doc.id, sha256=doc.sha256, verdict=str(report.verdict), report=data)
    session.add(record)
    await session.flush()
    await audit.append(session, action="document.verified", unit_id=doc.sender_unit_id, document_id=doc.id,
                       object_id=record.id, data={"sha256": doc.sha256, "verdict": record.verdict,
                                                  "signatures": len(data.get("signatures", []))})
    return record


async def document_verification(session: AsyncSession, principal: Principal, doc_id: str,
                                runtime: SigningRuntime, blobs: BlobStore) -> VerificationRecord:
    """Raises DocumentNotFoundError."""
    doc = await visible_document(session, principal, doc_id)
    return await record_verification(session, doc, runtime, blobs)


async def send_verified(session: AsyncSession, principal: Principal, doc_id: str,
                        selectors: list[RecipientSelector], policy: RoutingPolicy,
                        runtime: SigningRuntime | None, blobs: BlobStore) -> SendResult:
    """Verify the document (when a runtime is given), then send it with the verdict in
    every arrival notification. Raises what send_document raises."""
    notice: dict[str, Any] = {}
    if runtime is not None:
        doc = await visible_document(session, principal, doc_id)
        record = await record_verification(session, doc, runtime, blobs)
        notice = {"verdict": record.verdict}
    return await send_document(session, principal, doc_id, selectors, policy, notice)
