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
