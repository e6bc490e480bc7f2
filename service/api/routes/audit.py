"""Audit: verify the hash chain; auditors read any document of their subtree."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from service import audit
from service.api.deps import Tx, require_roles
from service.auth import Principal
from service.documents import require_whole_tree

router = APIRouter(prefix="/audit", tags=["audit"])
Auditor = Depends(require_roles("auditor", "admin"))


@router.get("/verify", summary="Walk the hash chain; report the first broken link",
            description="The chain holds every unit's entries: only an auditor or administrator whose part of "
                        "the tree is the whole tree may walk it.")
async def verify(tx: Tx, principal: Principal = Auditor) -> dict[str, Any]:
    await require_whole_tree(tx.session, principal)
    report = await audit.verify_chain(tx.session)
    return {"ok": report.ok, "entries": report.entries, "first_broken_seq": report.first_broken_seq,
            "reason": report.reason}
