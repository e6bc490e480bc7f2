"""The application factory: settings in, a FastAPI app out. Nothing at import time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from service.api.bodies import add_schemas
from service.api.deps import RequestSessions
from service.api.head import HeadAsGet
from service.api.limits import BodyLimit
from service.api.observability import configure_logging, install_observability
from service.api.problems import install_problem_handlers
from service.api.routes import audit, documents, health, pki, signing, units, users
from service.auth import PrincipalCache
from service.documents import BlobStore
from service.plugins import freeze_loaded, import_optional
from service.routing import RoutingPolicy
from service.settings import Settings
from service.storage.db import Database

__all__ = ["create_app"]

DESCRIPTION = """Secure exchange of non-classified official documents between the units of a
party organisation. Every error is `application/problem+json`; every endpoint but the
operations ones needs `Authorization: Bearer <token>`; times are Vietnam time (+07:00)."""

API_PREFIX = "/api/v1"
# Routers of optional packages, mounted when the package is present.
_OPTIONAL_ROUTERS = ("service.api.routes.notifications",)


def _streamed_routes() -> frozenset[tuple[str, str]]:
    """The routes that stream their body to disk and hold it to a limit of their own."""
    return frozenset({("POST", f"{API_PREFIX}/documents"), ("POST", f"{API_PREFIX}/verify"),
                      ("POST", f"{API_PREFIX}/units/import")})


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level)
    # No redirect for a trailing slash: its Location would be built from the Host header.
    app = FastAPI(title="docexchange", version="1.0.0", description=DESCRIPTION,
                  lifespan=_lifespan, openapi_url="/api/v1/openapi.json", docs_url="/api/v1/docs",
                  redirect_slashes=False)
    app.state.settings = settings
    app.state.policy = RoutingPolicy.parse(settings.routing_rules)
    app.state.principals = PrincipalCache(settings.auth_cache_s)
    install_problem_handlers(app)
    app.add_middleware(BodyLimit, streamed=_streamed_routes())
    app.add_middleware(RequestSessions)
    install_observability(app)
    app.add_middleware(HeadAsGet)  # outermost: every other one sees the GET it runs as
    # Each router straight on the app (a nested router matches every request twice),
    # the documents first: uploads and sends are most of the traffic.
    for router in (documents.router, signing.router, units.router, users.router, pki.router, audit.router,
                   *_optional_routers()):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(health.router)
    add_schemas(app)
    return app


def _optional_routers() -> list[Any]:
    modules = (import_optional(name) for name in _OPTIONAL_ROUTERS)
    return [m.router for m in modules if m is not None]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # the documents are no other user's
    if settings.auto_migrate:
        from service.storage.migrate import upgrade_async  # Alembic is only needed here

        await upgrade_async(settings.effective_database_url)
    app.state.db = Database(settings.effective_database_url, pool_size=settings.database_pool_size)
    app.state.blobs = BlobStore(settings.blob_dir)
    await _sweep_scratch(app.state.blobs)
    app.state.signing, app.state.signing_lock = None, asyncio.Lock()
    worker = await _start_worker(app) if settings.embedded_worker else None
    freeze_loaded()
    try:
        yield
    finally:
        if worker is not None:
            await worker.stop()
        if app.state.signing is not None:
            app.state.signing.close()
        await app.state.db.dispose()


async def _sweep_scratch(blobs: BlobStore) -> None:
    """What a process killed mid-upload or mid-signing left in the scratch folder."""
    from service.documents.external_signing import sweep_prepared

    await blobs.sweep_abandoned()
    await sweep_prepared(blobs)


async def _start_worker(app: FastAPI) -> Any:
    mail = import_optional("service.mail")
    start = getattr(mail, "start_embedded_worker", None)
    return await start(app.state.db, app.state.settings) if start else None
