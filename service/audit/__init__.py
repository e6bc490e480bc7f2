"""The append-only, hash-chained audit log."""

from service.audit.models import AuditEntry, AuditHead
from service.audit.service import ChainReport, append, entry_hash, history, verify_chain

__all__ = ["AuditEntry", "AuditHead", "ChainReport", "append", "entry_hash", "history", "verify_chain"]
