"""Importing, exporting, moving and renaming the unit tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata

import pytest

from service import units
from tests.factories.pdf import metadata, upload_form

NESTED = {"units": [{"code": "000.00.00.H98", "name": "Tỉnh ủy Thử", "level": "Tỉnh ủy", "has_seal": True,
                     "mailboxes": ["vp@thu.vn"], "children": [
                         {"code": "000.00.01.H98", "name": "Huyện ủy Cũ", "level": "Huyện ủy", "children": [
                             {"code": "000.01.01.H98", "name": "Chi bộ Một", "level": "Chi bộ"}]},
                         {"code": "000.00.02.H98", "name": "Đảng ủy xã Mới", "level": "Đảng ủy xã"}]}]}


async def test_json_and_csv_round_trip(database) -> None:
    async with database.session() as s:
        result = await units.import_tree(s, units.parse_tree(json.dumps(NESTED).encode(), "tree.json"))
        await s.commit()
    assert (result.created, result.updated) == (4, 0)
    async with database.session() as s:
        csv_text = units.dump_csv(await units.export_tree(s))
    assert "000.01.01.H98,Chi bộ Một,Chi bộ,000.00.01.H98" in csv_text
    again = units.parse_tree(csv_text.encode(), "tree.csv")
    assert [u.code for u in again] == ["000.00.00.H98", "000.00.01.H98", "000.00.02.H98", "000.01.01.H98"]
    async with database.session() as s:
        result = await units.import_tree(s, again)
    assert (result.created, result.updated) == (0, 4)


async def test_reform_moves_branches_without_losing_documents(client, world, database) -> None:
    # 2025 reform: a district disappears; its branches move under a commune.
    up = await client.post("/api/v1/documents", headers=world.auth("cb_dong"), **upload_form(metadata("2-CV/CB")))
    assert up.status_code == 201
    r = await client.patch("/api/v1/units/000.01.01.H99", headers=world.auth("admin"),
                           json={"parent": "000.00.02.H99", "name": "Chi bộ thôn Đông (mới)"})
    assert r.status_code == 200, r.text
    moved = await client.get("/api/v1/units/000.01.01.H99", headers=world.auth("admin"))
    assert moved.json()["name"] == "Chi bộ thôn Đông (mới)"
    tree = (await client.get("/api/v1/units", headers=world.auth("xa2"))).json()
    assert "000.01.01.H99" in [u["code"] for u in tree["units"]]
    docs = (await client.get("/api/v1/outbox", headers=world.auth("cb_dong"))).json()["items"]
    assert [d["number_notation"] for d in docs] == ["2-CV/CB"]
    # Moving a unit under its own descendant is refused.
    loop = await client.patch("/api/v1/units/000.00.02.H99", headers=world.auth("admin"),
                              json={"parent": "000.01.01.H99"})
    assert loop.status_code == 422
    assert "descendant" in loop.json()["detail"]


async def test_a_file_without_parents_renames_units_where_they_stand(database) -> None:
    async with database.session() as s:
        await units.import_tree(s, units.parse_tree(json.dumps(NESTED).encode(), "tree.json"))
        await s.commit()
    renames = ("code,name,level\n"
               "000.00.01.H98,Huyện ủy Cũ (đổi tên),Huyện ủy\n"
               "000.01.01.H98,Chi bộ Một (đổi tên),Chi bộ\n")
    as_json = [{"code": "000.00.02.H98", "name": "Đảng ủy xã Mới (đổi tên)", "level": "Đảng ủy xã"}]
    for data, name in ((renames.encode(), "renames.csv"), (json.dumps(as_json).encode(), "renames.json")):
        async with database.session() as s:
            await units.import_tree(s, units.parse_tree(data, name))
            await s.commit()
    async with database.session() as s:
        tree = {u.code: u for u in await units.export_tree(s)}
    assert tree["000.00.01.H98"].name == "Huyện ủy Cũ (đổi tên)"
    assert tree["000.00.01.H98"].parent_code == "000.00.00.H98", "a file that names no parent moves nothing"
    assert tree["000.01.01.H98"].parent_code == "000.00.01.H98"
    assert tree["000.00.02.H98"].name == "Đảng ủy xã Mới (đổi tên)"
    assert tree["000.00.02.H98"].parent_code == "000.00.00.H98"
    # An empty parent_code cell does say something: the operator makes the unit a root.
    async with database.session() as s:
        await units.import_tree(s, units.parse_tree(
            "code,name,level,parent_code\n000.00.02.H98,Tỉnh ủy Mới,Tỉnh ủy,\n".encode(),
            "root.csv"))
        await s.commit()
        tree = {u.code: u for u in await units.export_tree(s)}
    assert tree["000.00.02.H98"].parent_code is None


@pytest.mark.parametrize(("content", "words"), [
    ([{"code": "000.00.01.H97", "name": "A", "level": "x", "parent_code": "000.00.00.H97"}], "neither in the file"),
    ([{"code": "bad code", "name": "A", "level": "x"}], "not an identifier code"),
    ([{"code": "A1", "name": "A", "level": "x"}, {"code": "A1", "name": "B", "level": "x"}], "twice"),
    ([{"code": "A1", "name": "A", "level": "x", "parent_code": "A2"},
      {"code": "A2", "name": "B", "level": "x", "parent_code": "A1"}], "cycle"),
])
async def test_bad_trees_are_refused_with_the_reason(database, content, words) -> None:
    async with database.session() as s:
        with pytest.raises(units.InvalidTreeError, match=words):
            await units.import_tree(s, units.parse_tree(json.dumps(content).encode(), "t.json"))
        await s.rollback()
        assert await units.export_tree(s) == [], "a refused import writes nothing"



def test_names_are_stored_nfc() -> None:
    nfd = unicodedata.normalize("NFD", "Đảng ủy xã Hòa Bình")
    spec = units.parse_tree(json.dumps([{"code": "X1", "name": nfd, "level": "Đảng ủy xã"}]).encode(), "t.json")[0]
    assert spec.name == unicodedata.normalize("NFC", nfd)


def test_cli_imports_a_csv_file(tmp_path, settings) -> None:
    path = tmp_path / "units.csv"
    path.write_text("code,name,level,parent_code,mailboxes,has_seal\n"
                    "000.00.00.H97,Tỉnh ủy CLI,Tỉnh ủy,,vp@cli.vn,true\n"
                    "000.00.01.H97,Đảng ủy xã CLI,Đảng ủy xã,000.00.00.H97,xa@cli.vn;xa2@cli.vn,yes\n",
                    encoding="utf-8")
    env = {**os.environ, "DOCEX_DATABASE_URL": settings.effective_database_url,
           "DOCEX_DATA_DIR": str(settings.data_dir)}
    done = subprocess.run([sys.executable, "-m", "service.cli", "units", "import", str(path)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "2 units created" in done.stdout
    out = subprocess.run([sys.executable, "-m", "service.cli", "units", "export"], env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    exported = json.loads(out.stdout)["units"]
    assert exported[1]["mailboxes"] == ["xa@cli.vn", "xa2@cli.vn"]
    assert exported[1]["has_seal"] is True
