"""The list a clerk chooses recipients from shows the units a send to the same level reaches."""

from __future__ import annotations

import unicodedata

import pytest

from tests.factories.pdf import metadata, upload_form
from tests.units.conftest import XA1


@pytest.mark.parametrize("level", ["Chi bộ", "chi bộ", "CHI BỘ", " Chi  bộ ", unicodedata.normalize("NFD", "Chi bộ")])
async def test_the_units_listed_for_a_level_are_the_units_a_send_to_that_level_reaches(client, world, level) -> None:
    r = await client.get("/api/v1/units", headers=world.auth("xa1"), params={"root": XA1, "level": level})
    assert r.status_code == 200, r.text
    listed = sorted(u["code"] for u in r.json()["units"])
    up = await client.post("/api/v1/documents", headers=world.auth("xa1"), **upload_form(metadata("71-CV/ĐU")))
    assert up.status_code == 201, up.text
    sent = await client.post(f"/api/v1/documents/{up.json()['id']}/send", headers=world.auth("xa1"),
                             json={"recipients": [{"under": XA1, "level": level}]})
    assert sent.status_code == 200, sent.text
    assert listed == ["000.01.01.H99", "000.02.01.H99", "000.03.01.H99"]
    assert sent.json()["created"] == len(listed)
