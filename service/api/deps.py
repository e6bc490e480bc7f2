"""Request dependencies: the transaction, the caller, settings, the blob store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Receive, Scope, Send

from service.auth import (
    AuthenticationError,
    Principal,
    PrincipalCache,
    authenticate_until,
    check_still_valid,
    token_hash,
)
from service.documents import BlobStore
from service.errors import ConflictError
from service.plugins import freeze_loaded
from service.routing import RoutingPolicy
from service.settings import Settings
from service.storage.db import Database

log = logging.getLogger("docexchange.signing")

if TYPE_CHECKING:
    from service.signing.runtime import SigningRuntime

__all__ = [
    "DB",
    "Blobs",
    "CurrentPrincipal",
    "Policy",
    "Principal",
    "Principals",
    "RequestSessions",
    "SettingsDep",
    "Signing",
    "Transaction",
    "Tx",
    "current_principal",
    "principal_cache",
    "require_roles",
    "signing_runtime",
]


class Transaction:
    """The request's one transaction; the route commits it after the service call."""

    def __init__(self, session: AsyncSession, request: Request) -> None:
        self.session = session
        self.request = request
        self._takes_access_away = False

    def only_takes_access_away(self) -> None:
        """This request only revokes: it commits even if the caller's own token is revoked
        by then (by this very request, when a token revokes itself)."""
        self._takes_access_away = True

    async def commit(self) -> None:
        """Raises ConflictError when a concurrent request won a uniqueness race;
        AuthenticationError when the caller's token was revoked (or its user deactivated)
        while the request ran: checked in this transaction, whichever process revoked it."""
        hashed = getattr(self.request.state, "token_hash", None)
        if hashed is not None and self.session.in_transaction() and not self._takes_access_away:
            await check_still_valid(self.session, hashed)
        try:
            await self.session.commit()
        except IntegrityError as exc:
            await self.session.rollback()
            raise ConflictError("another request changed the same data at the same moment; retry") from exc


# Dependencies are coroutines even when they only read app state: FastAPI runs a plain
# function dependency on a worker thread, a hand-off that costs more than the lookup.


def _database(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


async def _database_dep(request: Request) -> Database:
    return _database(request)


DB = Annotated[Database, Depends(_database_dep)]


_SESSIONS = "docexchange.sessions"  # scope key: the sessions a request opened


async def _transaction(request: Request) -> Transaction:
    # A plain dependency, closed by RequestSessions: FastAPI's machinery for a dependency
    # with ``yield`` (an exit stack and shielded context managers) costs more than the session.
    session = _database(request).sessions()
    request.scope.setdefault(_SESSIONS, []).append(session)
    return Transaction(session, request)


class RequestSessions:
    """ASGI middleware: closes the sessions a request opened once its response is sent;
    closing rolls back whatever the route did not commit (an error, a refusal)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            for session in scope.pop(_SESSIONS, ()):
                await asyncio.shield(session.close())  # even when the request is cancelled


Tx = Annotated[Transaction, Depends(_transaction)]


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _blobs(request: Request) -> BlobStore:
    blobs: BlobStore = request.app.state.blobs
    return blobs


async def _policy(request: Request) -> RoutingPolicy:
    policy: RoutingPolicy = request.app.state.policy
    return policy


async def signing_runtime(request: Request) -> SigningRuntime:
    # Started on first use: opening (or creating) the PKI costs a second or two.
    state = request.app.state
    from service.signing.errors import PkiError
    from service.signing.runtime import RuntimeConfig, SigningRuntime

    async with state.signing_lock:
        if state.signing is None:
            try:
                state.signing = await SigningRuntime.start(RuntimeConfig.from_settings(state.settings))
            except PkiError as exc:
                # The cause names the server's files: for the operator's log, not the caller.
                log.error("the signing keys cannot be opened: %s", exc.detail)
                raise PkiError("the service cannot open its signing keys at the moment; tell the operator (the "
                               "server's log names the cause)") from exc
            freeze_loaded()  # its modules (pyHanko, certificate validation) stay loaded
        runtime: SigningRuntime = state.signing
        return runtime


SettingsDep = Annotated[Settings, Depends(_settings)]
if TYPE_CHECKING:
    Signing = Annotated[SigningRuntime, Depends(signing_runtime)]
else:  # FastAPI reads this at import; the class itself loads on first use
    Signing = Annotated[Any, Depends(signing_runtime)]
Blobs = Annotated[BlobStore, Depends(_blobs)]
Policy = Annotated[RoutingPolicy, Depends(_policy)]


async def current_principal(request: Request) -> Principal:
    """The caller behind ``Authorization: Bearer …``. Raises AuthenticationError.

    Looked up in a short session of its own: the request's transaction (on SQLite,
    the database's write lock) must not start before the body has streamed in. A token
    seen in the last few seconds is answered from memory (service.auth.cache); what the
    request changes is committed only if the token is still live then
    (``Transaction.commit``), so a token revoked by any process, or the operator's command
    line, or a deactivated user's, changes nothing from that moment on — above all, it
    issues no token to outlive the revocation, even from a request already under way.
    """
    headers = request.headers.getlist("authorization")
    if len(headers) > 1:  # a proxy reading the other one would let a different caller in
        raise AuthenticationError("send one Authorization header, not several")
    scheme, _, token = (headers[0] if headers else "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("send 'Authorization: Bearer <token>'; ask your unit administrator for a token")
    cache = principal_cache(request)
    key = token_hash(token.strip())
    request.state.token_hash = key
    principal = cache.get(key)
    if principal is None:
        generation = cache.generation
        async with _database(request).session() as session:
            principal, expires_at = await authenticate_until(session, token.strip())
        cache.put(key, principal, expires_at, generation)
    request.state.user_id = principal.user_id
    return principal


def principal_cache(request: Request) -> PrincipalCache:
    cache: PrincipalCache = request.app.state.principals
    return cache


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
async def _principals(request: Request) -> PrincipalCache:
    return principal_cache(request)


Principals = Annotated[PrincipalCache, Depends(_principals)]


def require_roles(*roles: str) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    """A dependency that admits only callers with one of ``roles``."""
    from service.documents import require_role

    async def _check(principal: CurrentPrincipal) -> Principal:
        require_role(principal, *roles)
        return principal

    return _check
