from __future__ import annotations

import json
import logging

from service.api.observability import JsonFormatter
from tests.factories.pdf import metadata, upload_form


async def test_upload_then_read_back(client, world) -> None:
    r = await client.post("/api/v1/documents", headers=world.auth("xa1"), **upload_form(metadata()))
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["number_notation"] == "35-KH/ĐU"
    got = await client.get(f"/api/v1/documents/{doc['id']}", headers=world.auth("xa1"))
    assert got.status_code == 200
    assert got.json()["sha256"] == doc["sha256"]


async def test_a_request_id_is_kept_or_made_and_named_in_errors(client, world) -> None:
    # An integrator's own id comes back; without one the service makes one and quotes it in errors.
    mine = await client.get("/api/v1/me", headers={**world.auth("xa1"), "X-Request-ID": "qlvb20261122a"})
    assert mine.headers["x-request-id"] == "qlvb20261122a"
    refused = await client.get("/api/v1/me")
    made = refused.headers["x-request-id"]
    assert len(made) == 16
    assert refused.json()["request_id"] == made


async def test_a_token_pasted_as_a_request_id_or_an_id_stays_out_of_the_access_log(client, world) -> None:
    # An integration that puts its token in the wrong place must not have it written to the logs.
    token = world.tokens["xa1"]
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(JsonFormatter().format(record))

    access = logging.getLogger("docexchange.access")
    keep, level = Keep(), access.level
    access.addHandler(keep)
    access.setLevel(logging.INFO)
    try:
        echoed = await client.get("/api/v1/me", headers={**world.auth("xa1"), "X-Request-ID": token})
        pasted = await client.get(f"/api/v1/documents/{token}", headers=world.auth("xa1"))
    finally:
        access.removeHandler(keep)
        access.setLevel(level)
    assert echoed.status_code == 200
    assert echoed.headers["x-request-id"] != token, "a token is no request id"
    assert pasted.status_code == 404
    assert len(lines) == 2
    assert not [line for line in lines if token in line or token[3:20] in line], lines
    assert json.loads(lines[1])["path"] == "/api/v1/documents/dx_…"
