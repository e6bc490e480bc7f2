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
    IdempotencyRecord,
    VerificationRecord,
)
from service.outbox.models import OutboxEvent
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
    "IdempotencyRecord",
    "OutboxEvent",
    "Unit",
    "User",
    "VerificationRecord",
    "metadata",
]

metadata = SQLModel.metadata


def _load_optional_tables() -> None:
    """Tables owned by optional packages (mail) register themselves on import."""
    import importlib

    for name in ("service.mail.models",):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


_load_optional_tables()
