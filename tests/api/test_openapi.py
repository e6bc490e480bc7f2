"""The OpenAPI document an integrator generates a client from: every body described, every
reference resolvable, examples where a client needs them."""

from __future__ import annotations

import json
from typing import Any

# Routes that take no body at all: their input is the path.
NO_BODY = {("post", "/api/v1/documents/{doc_id}/attachments/{att_id}/signature"),
           ("post", "/api/v1/notifications/{notification_id}/retry"),
           ("post", "/api/v1/notifications/{notification_id}/cancel")}


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if isinstance(node.get("$ref"), str) else [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_route_that_reads_a_body_describes_it(app) -> None:
    spec = app.openapi()
    missing = [(m, p) for p, ops in spec["paths"].items() for m, op in ops.items()
               if m in ("post", "put", "patch") and "requestBody" not in op and (m, p) not in NO_BODY]
    assert missing == []
    upload = spec["paths"]["/api/v1/documents"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert upload["schema"]["required"] == ["metadata", "file"]
    assert upload["encoding"]["metadata"]["contentType"] == "application/json"
    example = json.loads(upload["example"]["metadata"])
    assert set(example) <= set(spec["components"]["schemas"]["DocumentMetadata"]["properties"])
    imports = spec["paths"]["/api/v1/units/import"]["post"]["requestBody"]["content"]
    assert set(imports) == {"application/json", "text/csv", "multipart/form-data"}
    assert spec["paths"]["/api/v1/pki/tsa"]["post"]["requestBody"]["content"].keys() == {"application/timestamp-query"}


def test_every_reference_in_the_document_resolves(app) -> None:
    spec = app.openapi()
    schemas = spec["components"]["schemas"]
    refs = set(_refs(spec))
    assert refs, "the document uses components"
    unresolved = sorted(r for r in refs if not r.startswith("#/components/schemas/")
                        or r.rsplit("/", 1)[1] not in schemas)
    assert unresolved == []
