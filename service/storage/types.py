"""Column types shared by every table: ids, UTC times, JSON."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, TypeDecorator
from sqlalchemy.engine import Dialect

__all__ = ["UTCDateTime", "new_id", "new_ids", "utcnow"]


def new_id() -> str:
    """A random, unguessable identifier: 128 bits from the OS, as 32 hex digits."""
    return os.urandom(16).hex()


def new_ids(count: int) -> list[str]:
    """``count`` identifiers from one read of the OS's random source (bulk inserts)."""
    pool = os.urandom(16 * count).hex()
    return [pool[i:i + 32] for i in range(0, 32 * count, 32)]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC, on SQLite and PostgreSQL alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError("times must be timezone-aware")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        aware: datetime = value.replace(tzinfo=UTC)
        return aware
