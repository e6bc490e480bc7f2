"""The one place the relay writes to the core's audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service import audit

__all__ = ["audit_append"]


async def audit_append(session: AsyncSession, *, action: str, **entry: Any) -> None:
    """Append a relay action (e.g. a permanent failure) to the hash-chained audit log."""
    await audit.append(session, action=action, actor_id=None, **entry)
