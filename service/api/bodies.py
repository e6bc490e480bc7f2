"""OpenAPI descriptions of the bodies that routes read themselves.

Uploads, images, unit files and the PKI's DER requests are streamed or read by the route
(to disk, under a limit of their own) rather than parsed by FastAPI, so FastAPI cannot see
their shape. These fragments go into each route's ``openapi_extra``: an integrator
generating a client from ``/api/v1/openapi.json`` gets the same contract the routes hold to.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from pydantic.json_schema import models_json_schema

from service.documents.schemas import DocumentMetadata

__all__ = ["PDF_BODY", "PNG_BODY", "UNIT_FILE_BODY", "UPLOAD_BODY", "add_schemas", "der_body"]

_BINARY = {"type": "string", "format": "binary"}
_METADATA_EXAMPLE = json.dumps(DocumentMetadata.model_config.get("json_schema_extra", {}).get("example", {}),  # type: ignore[union-attr]
                               ensure_ascii=False)

# The models named only here: added to the document's components by ``add_schemas``.
_MODELS: tuple[type[Any], ...] = (DocumentMetadata,)

UPLOAD_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "required": ["metadata", "file"], "properties": {
        "metadata": {"$ref": "#/components/schemas/DocumentMetadata"},
        "file": {**_BINARY, "description": "The document: one PDF (checked, hashed and kept as sent)"},
        "attachments": {"type": "array", "items": _BINARY,
                        "description": "Any number of attachment files (a PDF among them is checked too)"},
    }},
    "encoding": {"metadata": {"contentType": "application/json"}, "file": {"contentType": "application/pdf"}},
    "example": {"metadata": _METADATA_EXAMPLE, "file": "(the PDF's bytes)"},
}}}}

PDF_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/pdf": {"schema": _BINARY},
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {"file": _BINARY}}},
}}}

PNG_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {"image/png": {
    "schema": {**_BINARY, "description": "A PNG of at most 2000 × 2000 pixels, transparent background"}}}}}

_UNIT = {"type": "object", "required": ["code", "name", "level"], "properties": {
    "code": {"type": "string", "description": "Identifier code, e.g. 000.00.01.H99"},
    "name": {"type": "string"}, "level": {"type": "string", "description": "e.g. Đảng ủy xã, Chi bộ"},
    "parent_code": {"type": "string", "description": "The parent's code. Left out (key or CSV column): an "
                                                 "existing unit stays where it is and a new one is a root; "
                                                 "empty or null: a root"},
    "mailboxes": {"type": "array", "items": {"type": "string", "format": "email"}},
    "has_seal": {"type": "boolean"},
    "children": {"type": "array", "items": {"$ref": "#/components/schemas/UnitFileEntry"},
                 "description": "Units below it (instead of parent_code)"},
}}

UNIT_FILE_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {
        "schema": {"oneOf": [{"type": "array", "items": {"$ref": "#/components/schemas/UnitFileEntry"}},
                             {"type": "object", "properties": {"units": {
                                 "type": "array", "items": {"$ref": "#/components/schemas/UnitFileEntry"}}}}]},
        "example": [{"code": "000.00.01.H99", "name": "Đảng ủy xã Tân Lập", "level": "Đảng ủy xã",
                     "parent_code": "000.00.00.H99", "mailboxes": ["vanthu.tanlap@hason.dcs.vn"], "has_seal": True,
                     "children": [{"code": "000.01.01.H99", "name": "Chi bộ thôn Đông", "level": "Chi bộ"}]}]},
    "text/csv": {
        "schema": {"type": "string", "description": "UTF-8 (or UTF-16 with its byte-order mark, as Excel's "
                                                    "Unicode text); the first line names the columns: code,name,"
                                                    "level,parent_code,mailboxes,has_seal; cells separated by "
                                                    "commas, semicolons or tabs (mailboxes split by ',' or ';')"},
        "example": "code,name,level,parent_code,mailboxes,has_seal\n"
                   "000.01.01.H99,Chi bộ thôn Đông,Chi bộ,000.00.01.H99,,false\n"},
    "multipart/form-data": {
        "schema": {"type": "object", "required": ["file"], "properties": {
            "file": {**_BINARY, "description": "One unit file, CSV or JSON (told apart by its name or content)"}}},
        "example": {"file": "(tree.csv)"}},
}}}


def der_body(media_type: str, what: str) -> dict[str, Any]:
    """A DER request of the PKI (``application/ocsp-request``, ``application/timestamp-query``)."""
    return {"requestBody": {"required": True, "content": {media_type: {"schema": {**_BINARY, "description": what}}}}}


# Every error is application/problem+json (service.api.problems): the document says so, in
# place of FastAPI's HTTPValidationError, so a generated client reads the answers it gets.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["type", "title", "status", "detail"], "additionalProperties": True,
    "properties": {
        "type": {"type": "string", "description": "URI naming the kind of problem"},
        "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string", "description": "What is wrong and what to do, in words a clerk can act on"},
        "instance": {"type": "string"}, "request_id": {"type": ["string", "null"]},
        "errors": {"type": "array", "description": "422: each field and what is wrong with it", "items": {
            "type": "object", "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}},
    }}
_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_ERRORS = {
    "401": "No valid bearer token", "422": "The request is not valid (errors lists the fields)",
    "4XX": "Refused: 403 not allowed, 404 not found (or not yours to see), 405, 409 conflict, 413 too large, "
           "415 media type, 429 wait (Retry-After)",
    "5XX": "503: a dependency (signing key, certificate authority, database) is not available",
}
_UNAUTHENTICATED = ("/api/v1/pki/", "/healthz", "/readyz", "/metrics")
# What a success is besides JSON, where the route answers with a response class of its own.
_SUCCESS_TYPES: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/api/v1/documents/{doc_id}/content"): {"application/pdf": {"schema": _BINARY}},
    ("get", "/api/v1/documents/{doc_id}/attachments/{att_id}"): {"application/octet-stream": {"schema": _BINARY}},
    ("get", "/api/v1/documents/{doc_id}/evidence"): {"application/zip": {"schema": _BINARY}},
    ("get", "/api/v1/documents/{doc_id}/verification"): {"text/html": {"schema": {"type": "string"}}},
    ("post", "/api/v1/verify"): {"text/html": {"schema": {"type": "string"}}},
    ("get", "/api/v1/units/export"): {"text/csv": {"schema": {"type": "string"}}},
    ("get", "/api/v1/pki/ca.crl"): {"application/pkix-crl": {"schema": _BINARY}},
    ("get", "/api/v1/pki/root.crl"): {"application/pkix-crl": {"schema": _BINARY}},
    ("get", "/api/v1/pki/ca.pem"): {"application/x-pem-file": {"schema": {"type": "string"}}},
    ("post", "/api/v1/pki/ocsp"): {"application/ocsp-response": {"schema": _BINARY}},
    ("post", "/api/v1/pki/tsa"): {"application/timestamp-reply": {"schema": _BINARY}},
    ("get", "/metrics"): {"text/plain": {"schema": {"type": "string"}}},
}


def _document_errors(schema: dict[str, Any]) -> None:
    """Each operation's error answers as problems; the bearer token as the security scheme."""
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for unused in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(unused, None)
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                                "description": "A token issued by the unit's administrator"}}
    for path, operations in schema.get("paths", {}).items():
        open_ = path.startswith(_UNAUTHENTICATED)
        for method, op in operations.items():
            responses = op.setdefault("responses", {})
            for code, description in _ERRORS.items():
                if code == "401" and open_:
                    continue
                given = responses.get(code, {}).get("description", "")
                keep = given if given and given != "Validation Error" else description
                responses[code] = {"description": keep, "content": _PROBLEM}
            for code in [c for c in responses if c[0] in "45" and c not in _ERRORS]:
                responses[code] = {"description": responses[code].get("description", ""), "content": _PROBLEM}
            extra = _SUCCESS_TYPES.get((method, path))
            success = next((c for c in responses if c.startswith("2")), None)
            if extra and success:
                content = responses[success].setdefault("content", {})
                if not any(content.values()):  # {"application/json": {}} of a response class with no body model
                    content.clear()
                content.update(extra)
            op["security"] = [] if open_ else [{"bearer": []}]


def add_schemas(app: FastAPI) -> None:
    """Put the models the fragments name into the document's components; errors as problems."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            _, defs = models_json_schema([(m, "validation") for m in _MODELS],
                                         ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(defs.get("$defs", {}))
            components["UnitFileEntry"] = _UNIT
            _document_errors(schema)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
