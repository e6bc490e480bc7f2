"""Two-step signing for signers whose key is on a USB token at their own computer.

``prepare``: the service builds the signature field and appearance, and returns the
bytes the token must sign. ``complete``: the client sends the signature value and its
certificate chain; the service embeds them, verifies the result, and records it like
any other personal signature. The prepared state never leaves the server.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service.auth import Principal
from service.documents.access import require_role
from service.documents.blobs import BlobStore
from service.documents.models import DocumentSignature, ExternalSigningSession
from service.documents.signing import PersonalRequest, own_unsent_document, record_signature
from service.errors import ConflictError, InvalidInputError, NotFoundError
from service.storage.rows import update_if
from service.storage.types import utcnow
from service.units import User

if TYPE_CHECKING:
    from service.signing.runtime import SigningRuntime

__all__ = ["SESSION_LIFETIME", "complete_signing", "decode_der_list", "prepare_signing", "sweep_prepared"]

SESSION_LIFETIME = timedelta(minutes=15)
# The prepared file of a session nobody completed is removed by a later prepare, once it is
# this old: its session expired at least 15 minutes before (the file is written before the
# session's expiry is set), longer than any completion claimed just in time could still run.
_PREPARED_FILES = ".*.prepared"  # service.signing.external names them after the scratch output
_PREPARED_KEPT = SESSION_LIFETIME + timedelta(minutes=15)


def decode_der_list(items: list[str], what: str) -> list[bytes]:
    """Base64 strings to bytes. Raises InvalidInputError naming the bad item."""
    try:
        return [base64.b64decode(item, validate=True) for item in items]
    except (binascii.Error, ValueError) as exc:
        raise InvalidInputError(f"{what} must be base64 (DER)") from exc


async def sweep_prepared(blobs: BlobStore) -> int:
    """Remove the prepared files of sessions that can no longer be completed; how many."""
    return await blobs.sweep_scratch(_PREPARED_FILES, _PREPARED_KEPT.total_seconds())


async def prepare_signing(session: AsyncSession, principal: Principal, doc_id: str, where: PersonalRequest,
                          chain: list[bytes], runtime: SigningRuntime,
                          blobs: BlobStore) -> tuple[ExternalSigningSession, dict[str, str]]:
    """Raises DocumentNotFoundError, PermissionDeniedError, ConflictError, InvalidInputError, SigningError."""
    from service.signing import Placement, prepare_external

    require_role(principal, "signer")
    if not chain:
        raise InvalidInputError("send the signer's certificate (and its chain) in certificate_chain")
    await sweep_prepared(blobs)
    doc = await own_unsent_document(session, principal, doc_id)
    user = await session.get(User, principal.user_id)
    image = blobs.path(user.signature_image_sha).read_bytes() if user and user.signature_image_sha else None
    prepared = await prepare_external(
        blobs.path(doc.sha256), placement=Placement(page=where.page, box=where.box, field_name=where.field_name),
        signer_name=user.full_name if user else principal.full_name, cert_der=chain[0], chain_der=chain[1:],
        image_png=image, options=runtime.options, dst=blobs.scratch())
    row = ExternalSigningSession(document_id=doc.id, user_id=principal.user_id, sha256_before=doc.sha256,
                                 state={"prepared": base64.b64encode(prepared.state).decode()},
                                 expires_at=utcnow() + SESSION_LIFETIME)
    session.add(row)
    await session.flush()
    return row, prepared.client_request()


async def complete_signing(session: AsyncSession, principal: Principal, session_id: str, signature_value: bytes,
                           chain: list[bytes], runtime: SigningRuntime, blobs: BlobStore) -> DocumentSignature:
    """Raises NotFoundError, ConflictError (expired, used, document changed), ExternalSigningError."""
    from service.signing import complete_external

    row = await session.get(ExternalSigningSession, session_id)
    if row is None or row.user_id != principal.user_id:
        raise NotFoundError("no such signing session of yours")
    if row.completed_at is not None or not await _claim(session, row):
        raise ConflictError(_ALREADY_COMPLETED)
    state = base64.b64decode(row.state["prepared"])
    if row.expires_at <= utcnow():
        # Nobody can complete it any more; the claim is rolled back with this refusal.
        await asyncio.to_thread(_forget_prepared, state)
        raise ConflictError("this signing session expired; prepare the signature again")
    doc = await own_unsent_document(session, principal, row.document_id)
    if doc.sha256 != row.sha256_before:
        raise ConflictError("the document changed since the signature was prepared; prepare it again")
    result = await complete_external(state, signature_value, chain, trust=runtime.trust,
                                     timestamper=runtime.timestamper(), verifier=runtime.verifier())
    return await record_signature(session, principal, doc, "personal", result, Path(result.output), blobs)


_ALREADY_COMPLETED = "this signing session was already completed"


async def _claim(session: AsyncSession, row: ExternalSigningSession) -> bool:
    """Mark the session completed unless another request did; False if one did.

    Parallel completions would otherwise all work on the one prepared file (one moves it
    away under the others). A request that fails later rolls the claim back with
    everything else, and the session can be retried.
    """
    return await update_if(session, row, col(ExternalSigningSession.completed_at).is_(None), completed_at=utcnow())


def _forget_prepared(state: bytes) -> None:
    # The prepared (unsigned) copy, once no completion can use it.
    try:
        info: Any = json.loads(state)
    except ValueError:
        return
    prepared = info.get("prepared") if isinstance(info, dict) else None
    if isinstance(prepared, str):
        Path(prepared).unlink(missing_ok=True)
