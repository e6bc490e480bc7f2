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


async def test_an_error_no_handler_knows_is_a_500_problem_with_the_request_id_and_a_logged_cause(app, client,
                                                                                               world) -> None:
    # A fault injected where a bug would be: the caller gets a problem quoting the request id
    # (header and body alike), and the operator's log the cause under the same id.
    async def broken() -> None:
        raise RuntimeError("a bug in a route")

    app.add_api_route("/api/v1/test-broken", broken)
    lines: list[dict[str, str]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(JsonFormatter().format(record)))

    problems, keep = logging.getLogger("docexchange.api"), Keep()
    problems.addHandler(keep)
    try:
        r = await client.get("/api/v1/test-broken", headers=world.auth("xa1"))
    finally:
        problems.removeHandler(keep)
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["x-request-id"] == r.json()["request_id"]
    assert "a bug in a route" not in r.text, "the caller sees no internals"
    assert [line["request_id"] for line in lines] == [r.json()["request_id"]]
    assert "RuntimeError: a bug in a route" in lines[0]["exception"]
    assert (await client.get("/api/v1/me", headers=world.auth("xa1"))).status_code == 200
