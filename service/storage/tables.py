"""Every table of the service, imported so that one metadata knows them all."""

from __future__ import annotations

from sqlmodel import SQLModel

from service.audit.models import AuditEntry, AuditHead
from service.documents.models import (
    Attachment,
    Delivery,
    DeliveryEvent,
    Document,
    DocumentSignature,
    ExternalSigningSession,
    IdempotencyRecord,
    VerificationRecord,
)
from service.outbox.models import OutboxEvent
from service.plugins import import_optional
from service.units.models import ApiToken, Unit, User

__all__ = [
    "ApiToken",
    "Attachment",
    "AuditEntry",
    "AuditHead",
    "Delivery",
    "DeliveryEvent",
    "Document",
    "DocumentSignature",
    "ExternalSigningSession",
    "IdempotencyRecord",
    "OutboxEvent",
    "Unit",
    "User",
    "VerificationRecord",
    "metadata",
]

metadata = SQLModel.metadata


# Tables owned by optional packages register themselves on import.
import_optional("service.mail.models")
