"""Turning a received upload into a registered document, once per Idempotency-Key."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth import Principal
from service.documents.blobs import BlobWriter
from service.documents.registry import (
    StoredFile,
    check_pdf,
    find_idempotent,
    fingerprint,
    register_document,
    remember_idempotent,
)
from service.documents.schemas import DocumentMetadata
from service.documents.views import document_view
from service.errors import InvalidInputError

__all__ = ["UploadOutcome", "UploadedFile", "accept_upload"]


class UploadedFile(Protocol):
    field: str
    filename: str
    content_type: str
    writer: BlobWriter
    sha256: str


@dataclass(frozen=True)
class UploadOutcome:
    status_code: int
    body: dict[str, Any]
    replayed: bool


def _stored(f: UploadedFile) -> StoredFile:
    return StoredFile(f.sha256, f.writer.size, f.filename, f.content_type, f.writer.head, f.writer.tail)


def parse_metadata(raw: str | None) -> DocumentMetadata:
    """Raises InvalidInputError listing every bad field."""
    if raw is None:
        raise InvalidInputError("the form has no 'metadata' field (JSON with number_notation, subject, …)")
    try:
        return DocumentMetadata.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise InvalidInputError(f"the metadata is not valid: {detail}", errors=errors) from exc


def _split(files: Sequence[UploadedFile]) -> tuple[UploadedFile, list[UploadedFile]]:
    mains = [f for f in files if f.field == "file"]
    others = [f for f in files if f.field != "file"]
    if len(mains) != 1:
        raise InvalidInputError("send exactly one document in the form field 'file'")
    stray = [f.field for f in others if f.field not in ("attachments", "attachment")]
    if stray:
        raise InvalidInputError(f"unknown file fields {stray}; use 'file' and 'attachments'")
    return mains[0], others


async def accept_upload(session: AsyncSession, principal: Principal, fields: dict[str, str],
                        files: Sequence[UploadedFile], idempotency_key: str | None) -> UploadOutcome:
    """Validate, register and keep the files, or replay the first answer to a retry.

    The files are moved into the store before the caller commits, so a committed
    document always has its bytes. Raises InvalidInputError, ClassifiedDocumentError,
    NotPdfError, DuplicateDocumentError, IdempotencyMismatchError, PermissionDeniedError.
    """
    meta = parse_metadata(fields.get("metadata"))
    main, attachments = _split(files)
    # Everything the answer shows of the files: a retry renamed is a different request.
    print_ = fingerprint(meta.model_dump(mode="json"), *((f.sha256, f.filename, f.content_type)
                                                         for f in (main, *attachments))) if idempotency_key else ""
    record = await find_idempotent(session, principal, idempotency_key, print_)
    if record is not None:
        return UploadOutcome(record.status_code, record.body, True)
    for att in attachments:
        if att.writer.size == 0:
            raise InvalidInputError(f"the attachment {att.filename} is empty")
        if att.content_type == "application/pdf" or att.filename.lower().endswith(".pdf"):
            check_pdf(_stored(att), f"the attachment {att.filename}")
    doc, rows = await register_document(session, principal, meta, _stored(main), [_stored(a) for a in attachments])
    body = document_view(doc, rows)
    if idempotency_key:
        await remember_idempotent(session, principal, idempotency_key, print_, 201, json.loads(json.dumps(body)))
    for f in files:
        f.writer.commit(f.sha256)
    return UploadOutcome(201, body, False)
