"""Registering outgoing documents: checks, duplicates, files, idempotent retries."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Insert, bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from service import audit
from service.auth import Principal
from service.documents.access import require_role
from service.documents.models import Attachment, Document, IdempotencyRecord
from service.documents.numbering import NumberNotation, parse_number_notation
from service.documents.schemas import DocumentMetadata
from service.errors import ConflictError, InvalidInputError
from service.storage import driver
from service.storage.rows import construct, insert_rows
from service.text import fold, search_key

__all__ = [
    "DuplicateDocumentError",
    "IdempotencyMismatchError",
    "NotPdfError",
    "StoredFile",
    "check_pdf",
    "check_pdf_header",
    "find_idempotent",
    "fingerprint",
    "register_document",
    "remember_idempotent",
    "replay_or_run",
]


class DuplicateDocumentError(ConflictError):
    """Same number, notation and issuer as an earlier document of the unit."""

    code = "duplicate-document"
    title = "Duplicate document number"


class IdempotencyMismatchError(ConflictError):
    code = "idempotency-key-reused"
    title = "Idempotency-Key reused for a different request"


class NotPdfError(InvalidInputError):
    code = "not-a-pdf"
    title = "Not a PDF file"


@dataclass(frozen=True)
class StoredFile:
    """A received file: its content address, size and what the client called it."""

    sha256: str
    size: int
    filename: str
    content_type: str
    head: bytes
    tail: bytes


def check_pdf_header(size: int, head: bytes, what: str) -> None:
    """Raises NotPdfError unless ``head`` (the first bytes) starts a PDF."""
    if size == 0:
        raise NotPdfError(f"{what} is empty")
    if b"%PDF-" not in head[:1024]:
        raise NotPdfError(f"{what} is not a PDF: it does not start with %PDF-")


def check_pdf(f: StoredFile, what: str = "the document") -> None:
    """Cheap structural check of a PDF. Raises NotPdfError naming the problem."""
    check_pdf_header(f.size, f.head, f"{what} ({f.filename})")
    if b"%%EOF" not in f.tail or b"startxref" not in f.tail:
        raise NotPdfError(f"{what} ({f.filename}) is truncated: the end of the PDF (startxref, %%EOF) is missing")


_SAME_NUMBER = select(col(Document.id), col(Document.number_notation)).where(
    col(Document.sender_unit_id) == bindparam("unit_id"), col(Document.dedup_key) == bindparam("key")).limit(1)
_DOCUMENTS = Document.__table__  # type: ignore[attr-defined]
# The number check is the INSERT itself: a row whose number the unit already registered
# this year (uq_document_dedup) is not written, and no id comes back. On PostgreSQL a
# concurrent registration of the same number is waited for, then answered the same way.
_REGISTER: dict[str, Insert] = {
    "postgresql": postgresql.insert(_DOCUMENTS).on_conflict_do_nothing(constraint="uq_document_dedup")
    .returning(_DOCUMENTS.c.id),
    "sqlite": sqlite.insert(_DOCUMENTS).on_conflict_do_nothing(index_elements=["sender_unit_id", "dedup_key"])
    .returning(_DOCUMENTS.c.id),
}
_REGISTER_ANYWHERE = insert(_DOCUMENTS).returning(_DOCUMENTS.c.id)  # other databases: the constraint answers


async def register_document(session: AsyncSession, principal: Principal, meta: DocumentMetadata,
                            main: StoredFile, attachments: list[StoredFile]) -> tuple[Document, list[Attachment]]:
    """Create the outgoing document of the caller's unit.

    Raises PermissionDeniedError, ClassifiedDocumentError, NotPdfError, DuplicateDocumentError.
    """
    require_role(principal, "clerk")
    meta.check_secrecy()
    check_pdf(main)
    number = parse_number_notation(meta.number_notation)
    key = _dedup_key(meta.issued_on.year, number)
    doc = _new_document(principal, meta, number, key, main)
    values = {c.name: getattr(doc, c.key) for c in _DOCUMENTS.columns}
    if not await driver.fetch(session, _REGISTER.get(driver.dialect_of(session), _REGISTER_ANYWHERE), values):
        for first_id, first_number in await driver.fetch(session, _SAME_NUMBER, {"unit_id": principal.unit_id,
                                                                                 "key": key}):
            raise DuplicateDocumentError(
                f"your unit already registered {first_number} in {meta.issued_on.year} "
                f"as document {first_id}", existing_document_id=first_id,
                existing_document=f"/api/v1/documents/{first_id}")
        raise DuplicateDocumentError(f"your unit already registered {number.text} in {meta.issued_on.year}")
    rows = [construct(Attachment, document_id=doc.id, filename=a.filename, content_type=a.content_type,
                      sha256=a.sha256, size=a.size) for a in attachments]
    await insert_rows(session, rows)
    await audit.append(session, action="document.registered", actor_id=principal.user_id,
                       unit_id=principal.unit_id, document_id=doc.id,
                       data={"number_notation": doc.number_notation, "sha256": doc.sha256, "size": doc.size})
    return doc, rows


_SEARCH_MAX = 2500
_KEY_MAX = 200  # Document.dedup_key


def _dedup_key(year: int, number: NumberNotation) -> str:
    key = f"{year}:{number.key}"
    # Upper case can be longer than the notation (ß → SS, ﬃ → FFI). One notation always
    # gives one key, so a digest in place of an overlong one still finds every duplicate.
    return key if len(key) <= _KEY_MAX else f"{year}:{number.form}:#{hashlib.sha256(key.encode()).hexdigest()}"


def _new_document(principal: Principal, meta: DocumentMetadata, number: NumberNotation, key: str,
                  main: StoredFile) -> Document:
    searchable = f"{number.text} {meta.subject} {meta.doc_type}"
    # Built without the ORM's attribute events (a quarter of the cost): the row goes out
    # through insert_rows and the object is only read back.
    return construct(
        Document,
        sender_unit_id=principal.unit_id, created_by=principal.user_id,
        number=number.number, notation=number.notation, number_notation=number.text,
        issuer=number.issuer, dedup_key=key, doc_type=meta.doc_type, issued_on=meta.issued_on,
        # Cut to their columns: case folding can lengthen a text (ß → ss), and a search
        # reaches the first 2,500 characters of number, subject and type.
        place=meta.place, subject=meta.subject, search_text=search_key(searchable)[:_SEARCH_MAX],
        search_folded=fold(searchable)[:_SEARCH_MAX], signer_name=meta.signer_name,
        signer_position=meta.signer_position, urgency=meta.urgency, deadline=meta.deadline,
        recipients_text=meta.recipients_text, filename=main.filename, sha256=main.sha256, size=main.size,
    )


def fingerprint(*parts: Any) -> str:
    """A stable digest of a request's content, to recognise a retry."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


async def find_idempotent(session: AsyncSession, principal: Principal, key: str | None,
                          print_: str) -> IdempotencyRecord | None:
    """The stored first answer for this key, if any. Raises IdempotencyMismatchError.

    Requests carrying one user's key at the same moment take turns here until the first one's
    transaction ends (PostgreSQL: a transaction-scoped advisory lock; SQLite lets one writer in
    at a time): the others then find its answer and replay it, instead of racing it to the
    same document number or deliveries and getting a conflict.
    """
    if not key:
        return None
    digest = hashlib.sha256(f"idempotency\x00{principal.user_id}\x00{key}".encode()).digest()
    await driver.advisory_xact_lock(session, int.from_bytes(digest[:8], "big", signed=True))
    stmt = select(IdempotencyRecord).where(col(IdempotencyRecord.user_id) == principal.user_id,
                                           col(IdempotencyRecord.key) == key)
    record = (await session.execute(stmt)).scalars().first()
    if record is not None and record.fingerprint != print_:
        raise IdempotencyMismatchError(
            "this Idempotency-Key was already used for a different request; use a new key")
    return record


async def remember_idempotent(session: AsyncSession, principal: Principal, key: str | None,
                              print_: str, status_code: int, body: dict[str, Any]) -> None:
    if key:
        session.add(IdempotencyRecord(user_id=principal.user_id, key=key, fingerprint=print_,
                                      status_code=status_code, body=body))
        await session.flush()


async def replay_or_run(session: AsyncSession, principal: Principal, key: str | None, print_: str,
                        run: Any) -> tuple[dict[str, Any], bool]:
    """The stored answer for a retried key, or ``await run()`` remembered under it."""
    record = await find_idempotent(session, principal, key, print_)
    if record is not None:
        return record.body, True
    body = await run()
    if key:  # stored as JSON: the first answer and its replays must read the same
        body = json.loads(json.dumps(body, default=str))
        await remember_idempotent(session, principal, key, print_, 200, body)
    return body, False
