"""Liveness, readiness and metrics: unauthenticated by design (no data in them)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from service.api.problems import problem

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database answers and the file store is writable", response_model=None)
async def readyz(request: Request) -> dict[str, str] | Response:
    try:
        async with request.app.state.db.session() as session:
            await session.execute(text("SELECT 1"))
        probe = request.app.state.blobs.root / "tmp" / ".ready"
        probe.write_bytes(b"ok")
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported as such
        return problem(request, 503, "not-ready", "Not ready", f"dependency check failed: {type(exc).__name__}")
    return {"status": "ready"}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
