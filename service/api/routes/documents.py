"""Documents: upload, read, send, follow each recipient, recall, history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from service import documents as docs
from service.api.bodies import UPLOAD_BODY
from service.api.deps import DB, Blobs, CurrentPrincipal, Policy, SettingsDep, Tx, signing_runtime
from service.api.files import DownloadResponse
from service.api.multipart import receive_form
from service.documents.verification import send_verified
from service.text import IsoDate, RequiredText

router = APIRouter(tags=["documents"])
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200,
                                       description="Retry-safe key: a retry returns the first answer")]


class RecallRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"reason": "Ban hành nhầm số"}})

    reason: RequiredText = Field(max_length=2000, json_schema_extra={"minLength": 1})


async def filters(status: str | None = Query(None, pattern=r"^\d{2}$"), urgency: int | None = Query(None, ge=0, le=3),
            since: IsoDate | None = None, until: IsoDate | None = None,
            q: str | None = Query(None, max_length=200, description="Text in number or subject; diacritics optional"),
            limit: int = Query(50, ge=1, le=500), cursor: str | None = None) -> docs.ListFilters:
    return docs.ListFilters(status, urgency, since, until, q, limit, cursor)


UPLOAD_DOC = """multipart/form-data with `metadata` (JSON, see DocumentMetadata), `file` (the PDF)
and any number of `attachments`. Classified documents are refused and nothing is kept."""


@router.post("/documents", status_code=201, summary="Register an outgoing document", description=UPLOAD_DOC,
             responses={201: {"description": "Registered"}, 409: {"description": "Duplicate number"},
                        413: {"description": "Too large"}, 415: {"description": "Not multipart"},
                        422: {"description": "Bad metadata, not a PDF, classified"}}, openapi_extra=UPLOAD_BODY)
async def upload(request: Request, tx: Tx, principal: CurrentPrincipal, blobs: Blobs,
                 settings: SettingsDep, idempotency_key: IdemKey = None) -> JSONResponse:
    form = await receive_form(request, blobs, settings.max_upload_bytes)
    try:
        outcome = await docs.accept_upload(tx.session, principal, form.fields, form.files, idempotency_key)
        await tx.commit()
    finally:
        form.discard()
    headers = {"Location": f"/api/v1/documents/{outcome.body.get('id')}"}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(outcome.body, status_code=outcome.status_code, headers=headers)


@router.get("/documents/{doc_id}", summary="A document's metadata and attachments")
async def get_document(doc_id: str, tx: Tx, principal: CurrentPrincipal) -> dict[str, Any]:
    doc = await docs.visible_document(tx.session, principal, doc_id)
    return docs.document_view(doc, await docs.attachments_of(tx.session, doc.id))


@router.get("/documents/{doc_id}/content", summary="The PDF as last signed", response_class=DownloadResponse)
async def content(doc_id: str, tx: Tx, principal: CurrentPrincipal, blobs: Blobs) -> DownloadResponse:
    doc = await docs.readable_content(tx.session, principal, doc_id)
    return DownloadResponse(blobs.path(doc.sha256), media_type="application/pdf", filename=doc.filename)


@router.get("/documents/{doc_id}/attachments/{att_id}", summary="One attachment file",
            response_class=DownloadResponse)
async def attachment(doc_id: str, att_id: str, tx: Tx, principal: CurrentPrincipal, blobs: Blobs) -> DownloadResponse:
    doc = await docs.readable_content(tx.session, principal, doc_id)
    att = await docs.attachment_of(tx.session, doc.id, att_id)
    return DownloadResponse(blobs.path(att.sha256), media_type=att.content_type, filename=att.filename)


@router.post("/documents/{doc_id}/send", summary="Send to units and selectors, checked by the routing policy",
             description="The document is verified first; every arrival notification carries the verdict.")
async def send(doc_id: str, body: docs.SendRequest, request: Request, tx: Tx, principal: CurrentPrincipal,
               policy: Policy, settings: SettingsDep, blobs: Blobs, db: DB,
               idempotency_key: IdemKey = None) -> JSONResponse:
    selectors = body.selectors
    runtime = await signing_runtime(request) if settings.verify_on_send else None
    retry_print = docs.fingerprint("send", doc_id, body.model_dump()) if idempotency_key else ""
    answer, replayed = await send_verified(tx.session, db, principal, doc_id, selectors, policy, runtime, blobs,
                                           idempotency_key, retry_print)
    await tx.commit()
    return JSONResponse(answer, headers={"Idempotent-Replayed": "true"} if replayed else None)


@router.get("/documents/{doc_id}/deliveries", summary="Each recipient's status: counts and a paged list")
async def deliveries(doc_id: str, tx: Tx, principal: CurrentPrincipal,
                     f: Annotated[docs.ListFilters, Depends(filters)]) -> dict[str, Any]:
    doc, counts, page = await docs.document_deliveries(tx.session, principal, doc_id, f)
    return {"document_id": doc.id, "status_counts": counts, "next_cursor": page.next_cursor,
            "items": [docs.delivery_view(d, unit) for d, unit in page.items]}


@router.post("/documents/{doc_id}/recall", summary="Ask every recipient to give the document back (13)")
async def recall(doc_id: str, body: RecallRequest, tx: Tx, principal: CurrentPrincipal) -> dict[str, Any]:
    asked = await docs.recall_document(tx.session, principal, doc_id, body.reason)
    await tx.commit()
    return {"document_id": doc_id, "recall_requested": asked}


@router.get("/documents/{doc_id}/history", summary="The exchange history: every audited action on it")
async def history(doc_id: str, tx: Tx, principal: CurrentPrincipal) -> dict[str, Any]:
    return {"document_id": doc_id, "entries": await docs.document_history(tx.session, principal, doc_id)}


@router.get("/inbox", summary="Documents delivered to the caller's unit, urgent first")
async def inbox(tx: Tx, principal: CurrentPrincipal,
                f: Annotated[docs.ListFilters, Depends(filters)]) -> dict[str, Any]:
    page = await docs.inbox(tx.session, principal, f)
    return {"next_cursor": page.next_cursor, "items": [
        {**docs.delivery_view(d), "document": docs.document_view(doc), "from_unit_name": name}
        for d, doc, name in page.items]}


@router.get("/outbox", summary="Documents registered by the caller's unit, with status counts")
async def outbox(tx: Tx, principal: CurrentPrincipal,
                 f: Annotated[docs.ListFilters, Depends(filters)]) -> dict[str, Any]:
    page = await docs.outbox(tx.session, principal, f)
    return {"next_cursor": page.next_cursor,
            "items": [docs.document_view(doc, counts=counts) for doc, counts in page.items]}


@router.get("/deliveries/{delivery_id}", summary="One delivery, with every status step (who, when, why)")
async def get_delivery(delivery_id: str, tx: Tx, principal: CurrentPrincipal) -> dict[str, Any]:
    delivery, doc = await docs.visible_delivery(tx.session, principal, delivery_id, as_recipient=False)
    return {**docs.delivery_view(delivery), "document": docs.document_view(doc),
            "steps": await docs.delivery_steps(tx.session, delivery)}


@router.post("/deliveries/{delivery_id}/status", summary="Register (03), return (02), handle (04–06), "
             "answer a recall (15/16)")
async def change_status(delivery_id: str, body: docs.StatusChange, tx: Tx,
                        principal: CurrentPrincipal) -> dict[str, Any]:
    delivery = await docs.change_status(tx.session, principal, delivery_id, body)
    await tx.commit()
    return docs.delivery_view(delivery)


@router.post("/deliveries/{delivery_id}/forward", summary="Forward a registered document to units below")
async def forward(delivery_id: str, body: docs.SendRequest, tx: Tx, principal: CurrentPrincipal, policy: Policy,
                  idempotency_key: IdemKey = None) -> JSONResponse:
    selectors = body.selectors

    async def run() -> dict[str, Any]:
        result = await docs.forward_delivery(tx.session, principal, delivery_id, selectors, policy)
        return {"document_id": result.document_id, "created": result.created, "already_sent": result.already_sent}

    retry_print = docs.fingerprint("forward", delivery_id, body.model_dump()) if idempotency_key else ""
    answer, replayed = await docs.replay_or_run(tx.session, principal, idempotency_key, retry_print, run)
    await tx.commit()
    return JSONResponse(answer, headers={"Idempotent-Replayed": "true"} if replayed else None)
