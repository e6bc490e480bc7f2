"""The one place the relay writes to the core's audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service import audit

__all__ = ["audit_append"]


async def audit_append(session: AsyncSession, *, action: str, actor_id: str | None = None, **entry: Any) -> None:
    """Append a relay action (a permanent failure; by ``actor_id``, a retry or a cancel) to
    the hash-chained audit log."""
    await audit.append(session, action=action, actor_id=actor_id, **entry)
