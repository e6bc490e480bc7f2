"""Principals of recently authenticated tokens, kept for a few seconds.

Every request names its token; looking it up costs a database round trip and, on
SQLite, a turn at the one connection. A token seen a moment ago is answered from
memory instead. What the cache may get wrong is bounded: an entry lives at most
``ttl`` seconds and never past the token's own expiry, and this process forgets
everything the moment a token is revoked or a unit or user changes through it
(other processes notice within ``ttl``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import datetime

from service.auth.service import Principal
from service.storage.types import utcnow

__all__ = ["PrincipalCache"]


class PrincipalCache:
    """Token hash → principal, for ``ttl`` seconds; ``ttl`` 0 turns it off."""

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl, self.max_entries = ttl, max_entries
        self._entries: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._generation = 0  # counts clears: a lookup that began before one must not be kept

    @property
    def generation(self) -> int:
        """Read before looking a token up in the database; hand it back to ``put``."""
        return self._generation

    def get(self, token_hash: str) -> Principal | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del self._entries[token_hash]
            return None
        return entry[1]

    def put(self, token_hash: str, principal: Principal, token_expires_at: datetime, generation: int) -> None:
        """Keep what a lookup found, unless the cache was cleared while it ran: a token
        revoked meanwhile would otherwise be let in again for ``ttl`` seconds."""
        if self.ttl <= 0 or generation != self._generation:
            return
        left = min(self.ttl, (token_expires_at - utcnow()).total_seconds())
        if left <= 0:
            return
        self._entries[token_hash] = (time.monotonic() + left, principal)
        self._entries.move_to_end(token_hash)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry: a token, user or unit changed."""
        self._generation += 1
        self._entries.clear()
