"""An export imported again leaves the tree as it was: a subtree stays under its parent, and
every value comes back as it was written, however it begins."""

from __future__ import annotations

import pytest

from service import units
from tests.units.conftest import PROVINCE, XA1, Snapshot


@pytest.mark.parametrize("fmt", ["json", "csv"])
async def test_a_commune_export_imported_by_the_operator_stays_under_the_province(client, world, database,
                                                                                  commune_admin, snapshot: Snapshot,
                                                                                  fmt) -> None:
    before = await snapshot()
    exported = await client.get("/api/v1/units/export", headers=commune_admin, params={"format": fmt})
    assert exported.status_code == 200, exported.text
    async with database.session() as s:  # what `docexchange units import units-000.00.01.H99.<fmt>` does
        await units.import_tree(s, units.parse_tree(exported.content, f"units-{XA1}.{fmt}"))
        await s.commit()
    assert await snapshot() == before, "the commune and its branches stay where they were"
    province = await client.get(f"/api/v1/units/{XA1}", headers=world.auth("admin"))
    assert province.status_code == 200, "the province admin still reaches the commune"


async def test_a_commune_admin_imports_its_own_export_unchanged(client, commune_admin, snapshot: Snapshot) -> None:
    before = await snapshot()
    for fmt, ctype in (("json", "application/json"), ("csv", "text/csv")):
        exported = await client.get("/api/v1/units/export", headers=commune_admin, params={"format": fmt})
        r = await client.post("/api/v1/units/import", headers={**commune_admin, "content-type": ctype},
                              content=exported.content)
        assert r.status_code == 200, r.text
        assert r.json() == {"created": 0, "updated": 4}
    assert await snapshot() == before


@pytest.mark.parametrize("value", ["'=1+1", "''-x", "'", "'abc", "=SUM(A1)", "@home", "'@'"])
async def test_csv_export_and_import_give_back_names_that_begin_with_a_quote(client, world, value) -> None:
    admin = world.auth("admin")
    r = await client.patch("/api/v1/units/000.01.01.H99", headers=admin, json={"name": value, "level": value})
    assert r.status_code == 200, r.text
    exported = await client.get("/api/v1/units/export", headers=admin, params={"format": "csv"})
    assert all(not cell.startswith(("=", "+", "-", "@")) for line in exported.text.splitlines()
               for cell in line.split(",")), "no cell may start a formula"
    again = await client.post("/api/v1/units/import", headers={**admin, "content-type": "text/csv"},
                              content=exported.content)
    assert again.status_code == 200, again.text
    unit = (await client.get("/api/v1/units/000.01.01.H99", headers=admin)).json()
    assert (unit["name"], unit["level"]) == (value, value)


def test_a_mailbox_that_begins_with_a_quote_survives_the_csv() -> None:
    spec = units.UnitSpec("000.09.01.H99", "Chi bộ", "Chi bộ", PROVINCE, ["'-q@b.vn", "x@b.vn"], False)
    again = units.parse_tree(units.dump_csv([spec]).encode(), "tree.csv")[0]
    assert again.mailboxes == ["'-q@b.vn", "x@b.vn"]
