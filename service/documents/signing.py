"""Signing a registered document: who may, in what order, and what is recorded.

The PDF work is the signing package's; here: roles (signer → personal, clerk →
organisation seal), the seal rule (a unit without a seal cannot apply one), the
order (personal first, nothing after the seal, nothing after sending), the new
file's content address, an optimistic check that nobody changed the document
meanwhile, the signature row and the audit entry.
"""

from __future__ import annotations

import asyncio
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service import audit
from service.auth import Principal
from service.documents.access import require_role, visible_document
from service.documents.blobs import BlobStore
from service.documents.models import Attachment, Document, DocumentSignature, ExternalSigningSession
from service.documents.reading import attachment_of
from service.errors import ConflictError, InvalidInputError, PermissionDeniedError
from service.storage.rows import update_if
from service.text import search_key
from service.units import Unit, User, name_key

if TYPE_CHECKING:
    from service.signing import Placement
    from service.signing.runtime import SigningRuntime

__all__ = [
    "PersonalRequest",
    "own_unsent_document",
    "prepare_token_signature",
    "record_signature",
    "set_seal_image",
    "set_signature_image",
    "sign_attachment",
    "sign_organisation",
    "sign_personal",
    "signatures_of",
]


@dataclass(frozen=True)
class PersonalRequest:
    """Where the personal signature goes: page + box (PDF points) or an empty field."""

    page: int = 0
    box: tuple[float, float, float, float] | None = None
    field_name: str | None = None


async def signatures_of(session: AsyncSession, doc_id: str) -> list[DocumentSignature]:
    stmt = select(DocumentSignature).where(col(DocumentSignature.document_id) == doc_id).order_by(
        col(DocumentSignature.signed_at))
    return list((await session.execute(stmt)).scalars())


async def own_unsent_document(session: AsyncSession, principal: Principal, doc_id: str) -> Document:
    """The caller's unit's document, still open to signatures.

    Raises DocumentNotFoundError, PermissionDeniedError, ConflictError.
    """
    doc = await visible_document(session, principal, doc_id)
    if doc.sender_unit_id != principal.unit_id:
        raise PermissionDeniedError("only the issuing unit signs its documents")
    if doc.sent_at is not None:
        raise ConflictError("this document was already sent; signatures are applied before sending")
    if any(s.kind == "organisation" for s in await signatures_of(session, doc.id)):
        raise ConflictError("the organisation seal is on this document: it is locked and cannot be signed again")
    return doc


async def _sealing_unit(session: AsyncSession, principal: Principal) -> Unit:
    require_role(principal, "clerk")
    unit = await session.get(Unit, principal.unit_id)
    if unit is None or not unit.has_seal:
        raise PermissionDeniedError("your unit holds no seal, so it cannot apply an organisation signature "
                                    "(a chi bộ signs through its parent committee)")
    # A seal shows the unit's name: two sealed units of one name would seal as each other,
    # and a letter of another script that looks Latin (Cyrillic а, Greek ο) would make one.
    foreign = sorted({ch for ch in unit.name if ch.isalpha() and "LATIN" not in unicodedata.name(ch, "")})
    if foreign:
        shown = ", ".join(f"{ch} (U+{ord(ch):04X})" for ch in foreign[:5])
        raise ConflictError(f"the name of your unit holds letters that only look Latin: {shown}; a seal shows the "
                            "name as it is, so none is applied until the administrator of the unit above types it "
                            "again in Vietnamese letters")
    namesakes = await session.execute(select(col(Unit.name)).where(
        col(Unit.has_seal), col(Unit.id) != unit.id, col(Unit.name_folded) == name_key(unit.name)))
    if any(search_key(name) == search_key(unit.name) for (name,) in namesakes):
        raise ConflictError(f"another unit that holds a seal is also named {unit.name}: a seal names one unit "
                            "alone, so none is applied until the administrator of the unit above renames one "
                            "of them")
    return unit


async def _image(blobs: BlobStore, sha: str | None) -> bytes | None:
    return blobs.path(sha).read_bytes() if sha else None


async def sign_personal(session: AsyncSession, principal: Principal, doc_id: str, where: PersonalRequest,
                        runtime: SigningRuntime, blobs: BlobStore) -> DocumentSignature:
    """The signer's visible personal signature.

    Raises DocumentNotFoundError, PermissionDeniedError, ConflictError, SigningError.
    """
    require_role(principal, "signer")
    doc = await own_unsent_document(session, principal, doc_id)
    user = await session.get(User, principal.user_id)
    if user is None:
        raise PermissionDeniedError("unknown signer")
    signer = await runtime.for_person(user.id, user.full_name, user.email)
    placement = _placement(where)
    with blobs.scratch_file() as out:
        result = await signer.sign_personal(blobs.path(doc.sha256), out, placement=placement,
                                            signer_name=user.full_name,
                                            image_png=await _image(blobs, user.signature_image_sha),
                                            options=runtime.options)
        return await record_signature(session, principal, doc, "personal", result, out, blobs)


async def sign_organisation(session: AsyncSession, principal: Principal, doc_id: str, personal_field: str | None,
                            runtime: SigningRuntime, blobs: BlobStore) -> DocumentSignature:
    """The unit's seal over the left third of the personal signature; locks the document.

    Raises DocumentNotFoundError, PermissionDeniedError, ConflictError, SigningError.
    """
    unit = await _sealing_unit(session, principal)
    doc = await own_unsent_document(session, principal, doc_id)
    field = _personal_field(await signatures_of(session, doc.id), personal_field)
    signer = await runtime.for_unit(unit.code, unit.name)
    with blobs.scratch_file() as out:
        result = await signer.sign_organisation(blobs.path(doc.sha256), out, unit_name=unit.name,
                                                personal_field=field, seal_png=await _image(blobs, unit.seal_image_sha),
                                                options=runtime.options)
        return await record_signature(session, principal, doc, "organisation", result, out, blobs)


async def sign_attachment(session: AsyncSession, principal: Principal, doc_id: str, att_id: str,
                          runtime: SigningRuntime, blobs: BlobStore) -> DocumentSignature:
    """The organisation signature on an attachment: top right, text only.

    Raises DocumentNotFoundError, PermissionDeniedError, ConflictError, SigningError.
    """
    unit = await _sealing_unit(session, principal)
    doc = await own_unsent_document(session, principal, doc_id)
    att = await attachment_of(session, doc.id, att_id)
    signer = await runtime.for_unit(unit.code, unit.name)
    with blobs.scratch_file() as out:
        result = await signer.sign_attachment(blobs.path(att.sha256), out, number_notation=doc.number_notation,
                                              unit_name=unit.name, options=runtime.options)
        return await record_signature(session, principal, doc, "attachment", result, out, blobs, attachment=att)


async def prepare_token_signature(session: AsyncSession, principal: Principal, doc_id: str, where: PersonalRequest,
                                  chain: list[bytes], runtime: SigningRuntime,
                                  blobs: BlobStore) -> tuple[ExternalSigningSession, dict[str, str]]:
    """Step 1 of a two-step (USB token) personal signature, once the certificate chain is
    known to be usable (a problem there is the request's, not the token's); the placement is
    checked as for a signature made here (``service.signing.prepare_external``).

    Raises DocumentNotFoundError, PermissionDeniedError, ConflictError, InvalidInputError, SigningError.
    """
    from service.documents.external_signing import prepare_signing  # it builds on this module

    require_role(principal, "signer")  # who may sign comes before what they sent
    _check_holder(_check_token_certificates(chain), principal)
    return await prepare_signing(session, principal, doc_id, where, chain, runtime, blobs)


def _check_token_certificates(chain: list[bytes]) -> Any:
    """The signer's certificate (asn1crypto), once ``chain`` is known to be DER certificates,
    the first with an RSA or EC key. Raises InvalidInputError."""
    from asn1crypto import x509

    if not chain:
        raise InvalidInputError("send the signer's certificate (and its chain) in certificate_chain")
    for index, der in enumerate(chain):
        try:
            cert = x509.Certificate.load(der)
            cert.native  # noqa: B018 - asn1crypto parses lazily: force a full parse
            if index == 0:
                signer, algorithm = cert, cert.public_key.algorithm
        except Exception as exc:  # noqa: BLE001 - damaged DER fails asn1crypto in many ways (AttributeError too)
            raise InvalidInputError(f"certificate_chain[{index}] is not a certificate: send each as base64 of "
                                    "its DER bytes (a .cer file), the signer's first") from exc
    if algorithm not in ("rsa", "ec"):
        raise InvalidInputError(f"the signer's certificate holds a {algorithm.upper()} key: only RSA and EC "
                                "keys can sign here")
    return signer


def _check_holder(cert: Any, principal: Principal) -> None:
    """Raises InvalidInputError unless the certificate is the caller's own: a personal
    signature is recorded, drawn and audited as the caller's, so the certificate in it must
    name them — by user id (certificates this deployment issues), or by name (those of
    another authority), compared without case or diacritics (``NGUYEN VAN AN`` is
    ``Nguyễn Văn An``). An organisation's certificate names no person and is refused too."""
    from service.signing import names_holder, subject_values

    if principal.user_id in subject_values(cert, "user_id") or names_holder(cert, principal.full_name):
        return
    holder = (subject_values(cert, "common_name") or ["no one"])[0]
    raise InvalidInputError(f"the certificate is {holder}'s, not yours ({principal.full_name}): sign with your own "
                            "token; if your name here differs from the one on your certificate, ask your unit's "
                            "administrator to correct it", field="certificate_chain")


def _placement(where: PersonalRequest) -> Placement:
    from service.signing import Placement

    return Placement(page=where.page, box=where.box, field_name=where.field_name)


_PERSONAL_FIRST = "the personal signature comes first: a signer must sign before the seal is applied"


def _personal_field(existing: list[DocumentSignature], requested: str | None) -> str:
    """The field of a personal signature made here that the seal goes over: ``requested``,
    or the latest. Another field (an empty one, one signed elsewhere) does not count as the
    leader's signature. Raises ConflictError."""
    personal = [s.field_name for s in existing if s.kind == "personal"]
    if not personal:
        raise ConflictError(_PERSONAL_FIRST)
    if requested is None:
        return personal[-1]
    if requested not in personal:
        raise ConflictError(f"{_PERSONAL_FIRST}; the field {requested!r} holds no personal signature made here "
                            f"(personal signatures of this document: {', '.join(map(repr, personal))})")
    return requested


async def record_signature(session: AsyncSession, principal: Principal, doc: Document, kind: str, result: Any,
                           out: Path, blobs: BlobStore, attachment: Attachment | None = None) -> DocumentSignature:
    """Move the document (or attachment) to the signed file, adopt it, and record who signed.

    Raises ConflictError when another signature landed on the document meanwhile.
    """
    target: Any = attachment or doc
    before = target.sha256
    size = out.stat().st_size
    # Optimistic: two signatures racing on one version must not both land.
    if not await update_if(session, target, type(target).sha256 == before, sha256=result.sha256, size=size):
        # The loser's own scratch file (a random name), never a content address: a blob
        # may be shared by rows (identical bytes stored once), and none was adopted here.
        await asyncio.to_thread(out.unlink, missing_ok=True)
        raise ConflictError("the document changed while it was being signed; sign again")
    # Into the store only once the row points at it, so a lost race leaves no blob behind.
    await blobs.adopt(out, result.sha256)
    row = DocumentSignature(document_id=doc.id, kind=kind, field_name=result.field_name,
                            signer_user_id=principal.user_id, unit_id=principal.unit_id, level=str(result.level),
                            sha256_before=before, sha256_after=result.sha256, signed_at=result.signed_at)
    session.add(row)
    await session.flush()
    await audit.append(session, action=f"document.signed.{kind}", actor_id=principal.user_id,
                       unit_id=principal.unit_id, document_id=doc.id, object_id=row.id,
                       data={"field": result.field_name, "signer": result.signer_subject, "level": str(result.level),
                             "sha256_before": before, "sha256_after": result.sha256,
                             "attachment_id": attachment.id if attachment else None})
    return row


async def set_signature_image(session: AsyncSession, principal: Principal, sha256: str) -> None:
    """A signer's own signature image. Raises PermissionDeniedError."""
    require_role(principal, "signer")
    user = await session.get(User, principal.user_id)
    if user is None:
        raise PermissionDeniedError("unknown signer")
    user.signature_image_sha = sha256
    await audit.append(session, action="user.signature_image", actor_id=user.id, unit_id=user.unit_id,
                       data={"sha256": sha256})


async def set_seal_image(session: AsyncSession, principal: Principal, sha256: str) -> None:
    """The seal image of the caller's unit (admins and clerks of a sealing unit).

    Raises PermissionDeniedError.
    """
    require_role(principal, "admin", "clerk")
    unit = await session.get(Unit, principal.unit_id)
    if unit is None or not unit.has_seal:
        raise PermissionDeniedError("your unit holds no seal")
    unit.seal_image_sha = sha256
    await audit.append(session, action="unit.seal_image", actor_id=principal.user_id, unit_id=unit.id,
                       data={"sha256": sha256})
