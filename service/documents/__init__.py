"""Documents: registration, files, sending, handling, listings."""

from service.documents.access import (
    DocumentNotFoundError,
    require_role,
    require_whole_tree,
    visible_delivery,
    visible_document,
)
from service.documents.blobs import BlobStore, BlobWriter, TooLargeError, blob_path
from service.documents.handling import change_status
from service.documents.listing import ListFilters, Page, delivery_counts, document_deliveries, inbox, outbox
from service.documents.models import (
    Attachment,
    Delivery,
    DeliveryEvent,
    Document,
    DocumentSignature,
    IdempotencyRecord,
    VerificationRecord,
)
from service.documents.numbering import NumberNotation, parse_number_notation
from service.documents.reading import (
    RecalledError,
    attachment_of,
    attachments_of,
    delivery_steps,
    document_history,
    readable_content,
)
from service.documents.registry import (
    DuplicateDocumentError,
    IdempotencyMismatchError,
    NotPdfError,
    StoredFile,
    check_pdf,
    check_pdf_header,
    find_idempotent,
    fingerprint,
    register_document,
    remember_idempotent,
    replay_or_run,
)
from service.documents.schemas import (
    URGENCY_NAMES,
    ClassifiedDocumentError,
    DocumentMetadata,
    SendRequest,
    StatusChange,
    parse_urgency,
)
from service.documents.sending import SendResult, forward_delivery, recall_document, send_document
from service.documents.statuses import STATUS_NAMES, InvalidTransitionError
from service.documents.uploads import UploadOutcome, accept_upload, parse_metadata
from service.documents.views import delivery_view, document_view, unit_brief

__all__ = [
    "STATUS_NAMES",
    "URGENCY_NAMES",
    "Attachment",
    "BlobStore",
    "BlobWriter",
    "ClassifiedDocumentError",
    "Delivery",
    "DeliveryEvent",
    "Document",
    "DocumentMetadata",
    "DocumentNotFoundError",
    "DocumentSignature",
    "DuplicateDocumentError",
    "IdempotencyMismatchError",
    "IdempotencyRecord",
    "InvalidTransitionError",
    "ListFilters",
    "NotPdfError",
    "NumberNotation",
    "Page",
    "RecalledError",
    "SendRequest",
    "SendResult",
    "StatusChange",
    "StoredFile",
    "TooLargeError",
    "UploadOutcome",
    "VerificationRecord",
    "accept_upload",
    "attachment_of",
    "attachments_of",
    "blob_path",
    "change_status",
    "check_pdf",
    "check_pdf_header",
    "delivery_counts",
    "delivery_steps",
    "delivery_view",
    "document_deliveries",
    "document_history",
    "document_view",
    "find_idempotent",
    "fingerprint",
    "forward_delivery",
    "inbox",
    "outbox",
    "parse_metadata",
    "parse_number_notation",
    "parse_urgency",
    "readable_content",
    "recall_document",
    "register_document",
    "remember_idempotent",
    "replay_or_run",
    "require_role",
    "require_whole_tree",
    "send_document",
    "unit_brief",
    "visible_delivery",
    "visible_document",
]
