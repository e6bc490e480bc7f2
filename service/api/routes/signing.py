"""Signatures and verification: sign by role, images, reports, verify any PDF."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from starlette.background import BackgroundTask

from service import documents as docs
from service.api.bodies import PDF_BODY, PNG_BODY
from service.api.deps import DB, Blobs, CurrentPrincipal, SettingsDep, Signing, Tx
from service.api.files import DownloadResponse
from service.api.images import received_png
from service.api.multipart import receive_body, receive_form
from service.documents import BlobWriter, verification
from service.documents import evidence as evidence_export
from service.documents import external_signing as external
from service.documents import signing as doc_signing
from service.errors import InvalidInputError
from service.text import first_control, to_vn_iso

router = APIRouter(tags=["signatures"])


_NOT_IN_NAMES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})  # control, format (invisible), other


def _field_name(name: str) -> str:
    # A PDF field's partial name: '.' would make it a path of fields; a control or an
    # invisible format character (U+200B, U+202E reversing the text) is no name a person
    # could have given it, and would show in reports as something it is not.
    visible = [c for c in name if unicodedata.category(c)[0] not in "CZ"]  # not space, control or format
    hidden = any(unicodedata.category(c) in _NOT_IN_NAMES for c in name)
    if not visible or hidden or "." in name or first_control(name, breaks=False) is not None:
        raise ValueError("a signature field's name is 1 to 100 characters, with a letter or digit, "
                         "without '.', control characters or invisible format characters (such as U+200B, U+202E)")
    return unicodedata.normalize("NFC", name)


FieldName = Annotated[str, Field(max_length=100), AfterValidator(_field_name)]
Coordinate = Annotated[float, Field(ge=0, le=14400, allow_inf_nan=False)]  # 14,400 pt: the largest PDF page
# Points: a smaller box shows nothing, and pyHanko cannot scale an image into it. The same
# figure as service.signing.service._MIN_SIDE (a test holds both refusals to it), written again because
# importing that module would load pyHanko into every API process.
_MIN_SIDE = 10


class PersonalSignatureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"page": 0, "box": [330, 120, 500, 200]}})

    page: int = Field(default=0, ge=0, le=100_000, description="0-based page of the signature")
    box: tuple[Coordinate, Coordinate, Coordinate, Coordinate] | None = Field(
        default=None, description="x1, y1, x2, y2 in PDF points from the bottom left, inside the page; "
                                  "default: lower right")
    field_name: FieldName | None = Field(
        default=None, description="An existing empty signature field to sign (then leave out page and box); "
                                  "with a box: the name of the new field placed there")

    @field_validator("box")
    @classmethod
    def _box_has_area(cls, box: tuple[float, float, float, float] | None) -> tuple[float, float, float, float] | None:
        if box is not None and (box[2] - box[0] < _MIN_SIDE or box[3] - box[1] < _MIN_SIDE):
            raise ValueError(f"the box is x1, y1, x2, y2 with x2 greater than x1 and y2 greater than y1, "
                             f"by {_MIN_SIDE} points (3.5 mm) at least")
        return box


class SealRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    personal_field: FieldName | None = Field(
        default=None, description="The field of a personal signature made here to overlap "
                                  "(default: the latest one)")


def _signature_view(s: docs.DocumentSignature) -> dict[str, Any]:
    return {"id": s.id, "kind": s.kind, "field_name": s.field_name, "signer_user_id": s.signer_user_id,
            "unit_id": s.unit_id, "level": s.level, "sha256_before": s.sha256_before,
            "sha256_after": s.sha256_after, "signed_at": to_vn_iso(s.signed_at)}


def _report(record_or_report: dict[str, Any], fmt: str) -> Response:
    if fmt == "html":
        from service.signing import VerificationReport, render_html

        return HTMLResponse(render_html(VerificationReport.from_dict(record_or_report)))
    return JSONResponse(record_or_report)


@router.post("/documents/{doc_id}/signatures/personal", status_code=201,
             summary="Signer: the visible personal signature (image between position and name)")
async def sign_personal(doc_id: str, body: PersonalSignatureRequest, tx: Tx, principal: CurrentPrincipal,
                        runtime: Signing, blobs: Blobs) -> dict[str, Any]:
    where = doc_signing.PersonalRequest(body.page, body.box, body.field_name)
    row = await doc_signing.sign_personal(tx.session, principal, doc_id, where, runtime, blobs)
    await tx.commit()
    return _signature_view(row)


@router.post("/documents/{doc_id}/signatures/organisation", status_code=201,
             summary="Clerk: the unit's seal over the left third of the personal signature; locks the document")
async def sign_organisation(doc_id: str, body: SealRequest, tx: Tx, principal: CurrentPrincipal,
                            runtime: Signing, blobs: Blobs) -> dict[str, Any]:
    row = await doc_signing.sign_organisation(tx.session, principal, doc_id, body.personal_field, runtime, blobs)
    await tx.commit()
    return _signature_view(row)


@router.post("/documents/{doc_id}/attachments/{att_id}/signature", status_code=201,
             summary="Clerk: the organisation signature on an attachment (top right, text only)")
async def sign_attachment(doc_id: str, att_id: str, tx: Tx, principal: CurrentPrincipal,
                          runtime: Signing, blobs: Blobs) -> dict[str, Any]:
    row = await doc_signing.sign_attachment(tx.session, principal, doc_id, att_id, runtime, blobs)
    await tx.commit()
    return _signature_view(row)


@router.get("/documents/{doc_id}/signatures", summary="Signatures applied through the service")
async def list_signatures(doc_id: str, tx: Tx, principal: CurrentPrincipal) -> dict[str, Any]:
    doc = await docs.visible_document(tx.session, principal, doc_id)
    rows = await doc_signing.signatures_of(tx.session, doc.id)
    return {"document_id": doc.id, "signatures": [_signature_view(r) for r in rows]}


@router.get("/documents/{doc_id}/verification", summary="The verification report of the document as it is now",
            response_model=None)
async def document_verification(doc_id: str, tx: Tx, db: DB, principal: CurrentPrincipal, runtime: Signing,
                                blobs: Blobs,
                                format: Literal["json", "html"] = Query("json")) -> Response:
    record = await verification.document_verification(tx.session, db, principal, doc_id, runtime, blobs)
    await tx.commit()
    return _report(record.report, format)


@router.post("/verify", summary="Verify any PDF (also one from elsewhere); nothing is stored",
             description="Send the PDF as the body (`application/pdf`) or as the `file` field of a form. "
                         "One file of yours at a time: a second one sent before the first one's report is "
                         "back is answered 429 with `Retry-After`, as is any file while too many are waiting.",
             responses={429: {"description": "Your previous file is still being verified, or too many are waiting"}},
             response_model=None, openapi_extra=PDF_BODY)
async def verify_any(request: Request, principal: CurrentPrincipal, runtime: Signing, blobs: Blobs,
                     settings: SettingsDep, format: Literal["json", "html"] = Query("json")) -> Response:
    runtime.verifier().check_room(principal.user_id)  # before the body: a refusal costs no upload
    received = await _received_pdf(request, blobs, settings.max_upload_bytes)
    try:
        # A damaged PDF gets a report (that is what its verifier is for); a file that is no PDF at all does not.
        docs.check_pdf_header(received.size, received.head, "the file to verify")
        report = await runtime.verify(received.tmp_path, requester=principal.user_id)
    finally:
        received.discard()
    return _report(report.to_dict(), format)


async def _received_pdf(request: Request, blobs: Blobs, limit: int) -> BlobWriter:
    """The PDF of a body or of a form's 'file' field, still temporary: the caller discards it.
    Raises InvalidInputError, TooLargeError."""
    if not request.headers.get("content-type", "").startswith("multipart/"):
        return await receive_body(request, blobs, limit)
    form = await receive_form(request, blobs, limit)
    files = [f for f in form.files if f.field == "file"]
    keep = files[0] if len(files) == 1 else None
    for f in form.files:
        if f is not keep:
            f.writer.discard()  # nothing but the one PDF is looked at
    if keep is None:
        raise InvalidInputError("send the PDF in the form field 'file', once")
    return keep.writer


@router.put("/me/signature-image", status_code=204, summary="Signer: upload the blue signature image (PNG)",
            response_class=Response, openapi_extra=PNG_BODY)
async def put_signature_image(request: Request, tx: Tx, principal: CurrentPrincipal, blobs: Blobs) -> Response:
    async with received_png(request, blobs) as png:
        await doc_signing.set_signature_image(tx.session, principal, png.sha256)
    await tx.commit()
    return Response(status_code=204)  # no body, so no Content-Type either


@router.put("/units/me/seal-image", status_code=204, summary="Admin or clerk of a sealing unit: the red seal (PNG)",
            response_class=Response, openapi_extra=PNG_BODY)
async def put_seal_image(request: Request, tx: Tx, principal: CurrentPrincipal, blobs: Blobs) -> Response:
    async with received_png(request, blobs) as png:
        await doc_signing.set_seal_image(tx.session, principal, png.sha256)
    await tx.commit()
    return Response(status_code=204)


class ExternalPrepareRequest(PersonalSignatureRequest):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "page": 0, "box": [330, 120, 500, 200], "certificate_chain": ["MIID...signer", "MIID...issuing CA"]}})

    certificate_chain: list[str] = Field(min_length=1, max_length=10,
                                         description="Base64 DER: the signer's certificate first, then its CAs")


class ExternalCompleteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signature_value: str = Field(min_length=8, description="Base64 signature over `to_be_signed`")
    certificate_chain: list[str] = Field(min_length=1, max_length=10)


@router.post("/documents/{doc_id}/signatures/external", status_code=201,
             summary="Signer with a USB token: step 1, get the bytes to sign",
             description="Sign `to_be_signed` (or its SHA-256 `digest`) with the token's key, then call "
                         "`POST /signing-sessions/{id}/complete` within 15 minutes.")
async def prepare_external_signature(doc_id: str, body: ExternalPrepareRequest, tx: Tx,
                                     principal: CurrentPrincipal, runtime: Signing,
                                     blobs: Blobs) -> dict[str, Any]:
    chain = external.decode_der_list(body.certificate_chain, "certificate_chain")
    where = doc_signing.PersonalRequest(body.page, body.box, body.field_name)
    row, request_data = await doc_signing.prepare_token_signature(tx.session, principal, doc_id, where, chain,
                                                                  runtime, blobs)
    await tx.commit()
    return {"session_id": row.id, "expires_at": to_vn_iso(row.expires_at), **request_data}


@router.post("/signing-sessions/{session_id}/complete", status_code=201,
             summary="Signer with a USB token: step 2, send the signature value; it is embedded and verified")
async def complete_external_signature(session_id: str, body: ExternalCompleteRequest, tx: Tx,
                                      principal: CurrentPrincipal, runtime: Signing,
                                      blobs: Blobs) -> dict[str, Any]:
    value = external.decode_der_list([body.signature_value], "signature_value")[0]
    chain = external.decode_der_list(body.certificate_chain, "certificate_chain")
    row = await external.complete_signing(tx.session, principal, session_id, value, chain, runtime, blobs)
    await tx.commit()
    return _signature_view(row)


@router.get("/documents/{doc_id}/evidence", summary="Evidence package (ZIP): PDF, report, history, certificates",
            response_class=DownloadResponse)
async def evidence(doc_id: str, tx: Tx, principal: CurrentPrincipal, runtime: Signing,
                   blobs: Blobs) -> DownloadResponse:
    path = await evidence_export.export_evidence(tx.session, principal, doc_id, runtime, blobs)
    try:
        await tx.commit()
    except BaseException:  # nothing is sent: the file the export built is not left behind
        path.unlink(missing_ok=True)
        raise
    return DownloadResponse(path, media_type="application/zip", filename=f"evidence-{doc_id}.zip",
                            background=BackgroundTask(path.unlink, missing_ok=True))
