"""Units: read the tree, import/export it, move and rename units (admins)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import File, FormParser, parse_options_header

from service import units
from service.api.bodies import UNIT_FILE_BODY
from service.api.deps import CurrentPrincipal, Principals, Tx, require_roles
from service.api.multipart import read_small_body
from service.auth import Principal
from service.documents import unit_brief
from service.errors import InvalidInputError
from service.text import PlainText, search_key

router = APIRouter(prefix="/units", tags=["units"])
Admin = Depends(require_roles("admin"))
# A unit is ~200 bytes in a file: this is room for some 80,000 of them.
MAX_TREE_BYTES = 16 * 1024 * 1024


class UnitPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"name": "Đảng ủy phường Hồng Hà"}})

    # Not blank: units.check_label says so in words.
    name: PlainText | None = Field(default=None, max_length=300, json_schema_extra={"minLength": 1})
    level: PlainText | None = Field(default=None, max_length=100, json_schema_extra={"minLength": 1})
    code: PlainText | None = Field(default=None, max_length=64)
    mailboxes: list[PlainText] | None = Field(default=None, max_length=units.MAX_MAILBOXES)
    has_seal: bool | None = None
    parent: PlainText | None = Field(default=None, max_length=64, description="Move under this unit (code or id)")


def _view(unit: units.Unit) -> dict[str, Any]:
    return {**unit_brief(unit), "parent_id": unit.parent_id, "mailboxes": unit.mailboxes,
            "has_seal": unit.has_seal, "depth": unit.depth}


async def _in_scope(tx: Tx, principal: Principal, key: str) -> units.Unit:
    scope = principal.audit_root_path if principal.has("auditor") else principal.unit_path
    return await units.unit_in_scope(tx.session, key, scope)


async def _managed(tx: Tx, principal: Principal, key: str) -> units.Unit:
    # An admin changes only its own unit's subtree, even when an audit root lets it read more.
    return await units.unit_in_scope(tx.session, key, principal.unit_path)


@router.get("/me", summary="The caller's own unit")
async def my_unit(tx: Tx, principal: CurrentPrincipal) -> dict[str, Any]:
    return _view(await units.get_unit(tx.session, principal.unit_id))


@router.get("", summary="Units under the caller's unit (or a named root), for choosing recipients")
async def list_units(tx: Tx, principal: CurrentPrincipal, root: str | None = None,
                     level: str | None = None) -> dict[str, Any]:
    anchor = await _in_scope(tx, principal, root or principal.unit_id)
    specs = await units.export_tree(tx.session, anchor)
    key = search_key(level) if level is not None else None  # as a {"under", "level"} selector compares
    rows = [s for s in specs if key is None or search_key(s.level) == key]
    return {"root": anchor.code, "count": len(rows), "units": [s.as_dict() for s in rows]}


@router.get("/export", summary="Export the tree (subtree of the admin's unit) as JSON or CSV",
            response_model=None)
async def export(tx: Tx, principal: Principal = Admin,
                 format: Literal["json", "csv"] = Query("json")) -> PlainTextResponse:
    specs = await units.export_tree(tx.session, await units.get_unit(tx.session, principal.unit_id))
    if format == "csv":
        return PlainTextResponse(units.dump_csv(specs), media_type="text/csv; charset=utf-8",
                                 headers=_attachment(specs, "csv"))
    return PlainTextResponse(units.dump_json(specs), media_type="application/json", headers=_attachment(specs, "json"))


def _attachment(specs: list[units.UnitSpec], extension: str) -> dict[str, str]:
    # Codes are digits, capitals and dots: safe in a header as they are.
    return {"Content-Disposition": f'attachment; filename="units-{specs[0].code}.{extension}"'}


@router.post("/import", summary="Create or update units of the admin's subtree from a JSON or CSV body (admins)",
             openapi_extra=UNIT_FILE_BODY)
async def import_units(request: Request, tx: Tx, principals: Principals,
                       principal: Principal = Admin) -> dict[str, int]:
    ctype = request.headers.get("content-type", "")
    data = await read_small_body(request, MAX_TREE_BYTES,
                                 "the unit file (split it and import the parts one after another, parents first)")
    # Parsing megabytes is CPU work: off the event loop.
    specs = await asyncio.to_thread(_read_unit_file, data, ctype)
    await units.lock_tree(tx.session)
    me = await units.get_unit(tx.session, principal.unit_id)
    result = await units.import_tree(tx.session, specs, scope=me, actor_id=principal.user_id)
    await tx.commit()
    principals.clear()  # units may have moved: cached principals hold their paths
    return {"created": result.created, "updated": result.updated}


def _read_unit_file(data: bytes, ctype: str) -> list[units.UnitSpec]:
    """The units of a body: the file itself, or the one file of a form (``curl -F
    file=@tree.csv``, a web page's upload). A type (or file name) naming CSV or JSON says
    which it is; any other (curl's --data-binary, text/plain) leaves it to the content."""
    media, params = parse_options_header(ctype)
    if media == b"multipart/form-data":
        data, name = _form_file(data, params.get(b"boundary", b""))
    else:
        name = "upload.csv" if b"csv" in media else "upload.json" if b"json" in media else "upload"
    return units.parse_tree(data, name)


def _form_file(data: bytes, boundary: bytes) -> tuple[bytes, str]:
    files: list[File] = []
    try:
        parser = FormParser("multipart/form-data", None, files.append, boundary=boundary,
                            config={"MAX_MEMORY_FILE_SIZE": MAX_TREE_BYTES + 1})  # held in memory, as the body is
        parser.write(data)
        parser.finalize()
    except (FormParserError, ValueError) as exc:
        raise InvalidInputError("the upload is not a valid multipart/form-data form; send the unit file as the "
                                "body itself (Content-Type: text/csv or application/json)") from exc
    if len(files) != 1:
        held = f"{len(files)} files" if files else "no file"
        raise InvalidInputError(f"the form holds {held}; send one unit file (with curl: -F file=@tree.csv), "
                                "or the file as the body itself")
    upload = files[0]
    upload.file_object.seek(0)
    return upload.file_object.read(), (upload.file_name or b"").decode("utf-8", "replace")


@router.get("/{key}", summary="One unit by id or code")
async def get_unit(key: str, tx: Tx, principal: CurrentPrincipal) -> dict[str, Any]:
    return _view(await _in_scope(tx, principal, key))


@router.patch("/{key}", summary="Rename, recode or move a unit; its documents stay with it (admins)")
async def patch_unit(key: str, patch: UnitPatch, tx: Tx, principals: Principals,
                     principal: Principal = Admin) -> dict[str, Any]:
    await units.lock_tree(tx.session)  # first: the units below are read as the last change left them
    unit = await _managed(tx, principal, key)
    await units.update_unit(tx.session, unit, name=patch.name, level=patch.level, code=patch.code,
                            mailboxes=patch.mailboxes, has_seal=patch.has_seal, scope_path=principal.unit_path,
                            actor_id=principal.user_id)
    if patch.parent is not None:
        await units.move_unit(tx.session, unit, await _managed(tx, principal, patch.parent),
                              actor_id=principal.user_id)
    await tx.commit()
    principals.clear()  # cached principals hold unit paths
    return _view(unit)
