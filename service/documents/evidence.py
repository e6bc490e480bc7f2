"""The evidence package an auditor hands to an inspector: PDF, report, history, certificates."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from service import audit
from service.auth import Principal
from service.documents.blobs import BlobStore
from service.documents.reading import document_history, readable_content
from service.documents.verification import record_verification

if TYPE_CHECKING:
    from service.signing.runtime import SigningRuntime

__all__ = ["export_evidence"]


async def export_evidence(session: AsyncSession, principal: Principal, doc_id: str, runtime: SigningRuntime,
                          blobs: BlobStore) -> Path:
    """A ZIP in the store's scratch area (the caller deletes it after sending).

    Raises DocumentNotFoundError, RecalledError, SigningError.
    """
    from service.signing import VerificationReport, build_evidence_zip

    doc = await readable_content(session, principal, doc_id)
    record = await record_verification(session, doc, runtime, blobs, exclusive=True)
    history = await document_history(session, principal, doc.id)
    # Recorded before the file is built: an export that fails is rolled back with its entry.
    await audit.append(session, action="document.evidence_exported", actor_id=principal.user_id,
                       unit_id=principal.unit_id, document_id=doc.id, data={"report_sha256": record.sha256})
    # What the verdict rests on beyond the file: the trust anchors, and what the service knew of
    # revocation (the development PKI's two CRLs, the issuing CA's and the root's; or the
    # deployment's configured CRLs and OCSP answers).
    trust = runtime.trust
    anchors = [cert.dump() for cert in (*trust.roots(), *trust.intermediates())]
    if runtime.pki:
        crls = [await asyncio.to_thread(runtime.pki.build_crl), await asyncio.to_thread(runtime.pki.build_root_crl)]
    else:
        crls = list(trust.crls_der)
    out = blobs.scratch().with_suffix(".zip")  # a name of its own: parallel exports of one document never meet
    await asyncio.to_thread(build_evidence_zip, blobs.path(doc.sha256), VerificationReport.from_dict(record.report),
                            history, out, certificates_der=anchors, crls_der=crls, ocsps_der=trust.ocsps_der,
                            document_name=f"{doc.id}.pdf")
    return out

