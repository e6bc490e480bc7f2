"""Audit: verify the hash chain; auditors read any document of their subtree."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from service import audit
from service.api.deps import Tx, require_roles
from service.auth import Principal

router = APIRouter(prefix="/audit", tags=["audit"])
Auditor = Depends(require_roles("auditor", "admin"))


@router.get("/verify", summary="Walk the hash chain; report the first broken link")
async def verify(tx: Tx, principal: Principal = Auditor) -> dict[str, Any]:
    report = await audit.verify_chain(tx.session)
    return {"ok": report.ok, "entries": report.entries, "first_broken_seq": report.first_broken_seq,
            "reason": report.reason}
