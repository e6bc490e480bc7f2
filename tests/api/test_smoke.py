from __future__ import annotations

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
