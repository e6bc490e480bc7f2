"""An admin changes only its own part of the tree: through an import or a PATCH,
no unit outside it is renamed, moved or recoded, and a refusal does not tell an
outside unit from one that does not exist."""

from __future__ import annotations

import pytest

from tests.units.conftest import PROVINCE, XA1, XA2, add_person

IMPORT = "/api/v1/units/import"
UNKNOWN = "000.00.77.H99"


def _problem(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return r.json()


async def _import(client, headers, rows, csv: bool = False):
    if csv:
        return await client.post(IMPORT, headers={**headers, "content-type": "text/csv"}, content=rows)
    return await client.post(IMPORT, headers=headers, json=rows)


async def test_a_commune_admin_cannot_take_over_a_sibling_commune(client, world, commune_admin, snapshot) -> None:
    before = await snapshot()
    r = await _import(client, commune_admin, [{"code": XA2, "name": "HIJACKED", "level": "Đảng ủy xã",
                                               "parent_code": XA1}])
    problem = _problem(r, 409)
    assert "already taken" in problem["detail"]
    assert "Hồng Hà" not in r.text, "the refusal must not show the outside unit"
    assert await snapshot() == before
    # XA2's people stayed out of reach: no token for them.
    users = (await client.get("/api/v1/users", headers=world.auth("admin"))).json()["users"]
    xa2_user = next(u for u in users if u["username"] == "user.xa2")
    tok = await client.post(f"/api/v1/users/{xa2_user['id']}/tokens", headers=commune_admin, json={"label": "x"})
    assert tok.status_code == 404


@pytest.mark.parametrize("outside", [XA2, PROVINCE, "000.01.02.H99"])
async def test_a_parent_outside_the_admins_part_looks_like_an_unknown_one(client, commune_admin, snapshot,
                                                                          outside) -> None:
    before = await snapshot()
    answers = []
    for parent in (outside, UNKNOWN):
        r = await _import(client, commune_admin, [{"code": "000.09.01.H99", "name": "Chi bộ mới", "level": "Chi bộ",
                                                   "parent_code": parent}])
        problem = _problem(r, 422)
        answers.append({k: str(v).replace(parent, "<parent>") for k, v in problem.items()
                        if k not in ("instance", "request_id")})
    assert answers[0] == answers[1]
    assert "your part of the tree" in answers[0]["detail"]
    assert await snapshot() == before


async def test_moving_an_own_branch_out_is_refused_like_an_unknown_parent(client, commune_admin, snapshot) -> None:
    before = await snapshot()
    moves = [await _import(client, commune_admin, [{"code": "000.01.01.H99", "name": "Chi bộ thôn Đông",
                                                     "level": "Chi bộ", "parent_code": parent}])
             for parent in (XA2, UNKNOWN)]
    details = [_problem(r, 422)["detail"].replace(p, "<parent>") for r, p in zip(moves, (XA2, UNKNOWN), strict=True)]
    assert details[0] == details[1]
    assert await snapshot() == before


async def test_one_outside_row_refuses_the_whole_file(client, commune_admin, snapshot) -> None:
    before = await snapshot()
    r = await _import(client, commune_admin, [
        {"code": "000.02.01.H99", "name": "Chi bộ thôn Tây (mới)", "level": "Chi bộ"},
        {"code": "000.09.01.H99", "name": "Chi bộ mới", "level": "Chi bộ", "parent_code": XA1},
        {"code": "000.01.01.H99", "name": "Chi bộ thôn Đông", "level": "Chi bộ", "parent_code": XA2},
    ])
    _problem(r, 422)
    assert await snapshot() == before


@pytest.mark.parametrize("parent", [XA2, "000.01.01.H99"])
async def test_the_admins_own_unit_keeps_its_place(client, commune_admin, snapshot, parent) -> None:
    before = await snapshot()
    r = await _import(client, commune_admin, [{"code": XA1, "name": "Đảng ủy xã Tân Lập", "level": "Đảng ủy xã",
                                               "parent_code": parent}])
    detail = _problem(r, 422)["detail"]
    assert "keeps its place" in detail
    assert PROVINCE in detail, "the refusal says what its parent_code may be"
    assert await snapshot() == before


async def test_the_admins_own_unit_named_with_its_own_parent_is_left_as_it_is(client, commune_admin,
                                                                              snapshot) -> None:
    before = await snapshot()
    r = await _import(client, commune_admin, [{"code": XA1, "name": "Đảng ủy xã Tân Lập", "level": "Đảng ủy xã",
                                               "parent_code": PROVINCE, "has_seal": True}])
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 0, "updated": 1}
    assert await snapshot() == before


async def test_a_commune_admin_imports_its_own_part(client, world, commune_admin, snapshot) -> None:
    exported = await client.get("/api/v1/units/export", headers=commune_admin, params={"format": "csv"})
    assert exported.status_code == 200
    assert f"{XA1},Đảng ủy xã Tân Lập,Đảng ủy xã,{PROVINCE}," in exported.text, "the export names the real parent"
    rows = exported.text.replace("Chi bộ thôn Tây", "Chi bộ thôn Tây (sáp nhập)")
    rows += "000.09.01.H99,Chi bộ thôn Mới,Chi bộ,000.01.01.H99,cbmoi@example.vn,không\n"
    r = await _import(client, commune_admin, rows.encode(), csv=True)
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 1, "updated": 4}
    after = {u["code"]: u for u in await snapshot()}
    assert after["000.02.01.H99"]["name"] == "Chi bộ thôn Tây (sáp nhập)"
    assert after[XA1]["parent_code"] == PROVINCE, "the admin's own unit stays where it is"
    assert after["000.09.01.H99"]["parent_code"] == "000.01.01.H99"
    assert after["000.09.01.H99"]["has_seal"] is False
    # A branch may move inside the commune.
    r = await _import(client, commune_admin, [{"code": "000.02.01.H99", "name": "Chi bộ thôn Tây",
                                               "level": "Chi bộ", "parent_code": "000.01.01.H99"}])
    assert r.status_code == 200, r.text
    assert {u["code"]: u for u in await snapshot()}["000.02.01.H99"]["parent_code"] == "000.01.01.H99"


async def test_a_rename_only_file_keeps_every_unit_in_its_place(client, commune_admin, snapshot) -> None:
    before = {u["code"]: u for u in await snapshot()}
    rows = ("code,name,level\n"
            f"{XA1},Đảng ủy xã Tân Lập,Đảng ủy xã\n"
            "000.01.01.H99,Chi bộ thôn Đông Một,Chi bộ\n")
    r = await _import(client, commune_admin, rows.encode(), csv=True)
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 0, "updated": 2}
    after = {u["code"]: u for u in await snapshot()}
    assert after["000.01.01.H99"]["name"] == "Chi bộ thôn Đông Một"
    assert {c: u["parent_code"] for c, u in after.items()} == {c: u["parent_code"] for c, u in before.items()}
    # A new unit still needs a parent inside the admin's part.
    new = await _import(client, commune_admin, [{"code": "000.09.01.H99", "name": "Chi bộ mới", "level": "Chi bộ"}])
    assert "has no parent" in _problem(new, 422)["detail"]


async def test_the_province_admin_still_imports_anything_under_the_province(client, world, snapshot) -> None:
    r = await _import(client, world.auth("admin"), [
        {"code": XA2, "name": "Đảng ủy phường Hồng Hà", "level": "Đảng ủy xã", "parent_code": PROVINCE,
         "children": [{"code": "000.09.02.H99", "name": "Chi bộ khu phố 9", "level": "Chi bộ"}]},
        {"code": "000.01.01.H99", "name": "Chi bộ thôn Đông", "level": "Chi bộ", "parent_code": XA2},
    ])
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 1, "updated": 2}
    after = {u["code"]: u for u in await snapshot()}
    assert after["000.01.01.H99"]["parent_code"] == XA2
    assert after["000.09.02.H99"]["parent_code"] == XA2
    # A second root is still not the province admin's to make.
    root = await _import(client, world.auth("admin"), [{"code": "000.00.00.H98", "name": "Tỉnh khác",
                                                        "level": "Tỉnh ủy"}])
    assert "has no parent" in _problem(root, 422)["detail"]


async def test_patch_cannot_reach_outside_the_admins_part(client, commune_admin, snapshot) -> None:
    before = await snapshot()
    branch = "/api/v1/units/000.01.01.H99"
    for parent in (XA2, PROVINCE):
        real = await client.patch(branch, headers=commune_admin, json={"parent": parent})
        fake = await client.patch(branch, headers=commune_admin, json={"parent": UNKNOWN})
        assert _problem(real, 404)["detail"] == _problem(fake, 404)["detail"]
    own = await client.patch(f"/api/v1/units/{XA1}", headers=commune_admin, json={"parent": PROVINCE})
    _problem(own, 404)
    sibling = await client.patch(f"/api/v1/units/{XA2}", headers=commune_admin, json={"name": "HIJACKED"})
    unknown = await client.patch(f"/api/v1/units/{UNKNOWN}", headers=commune_admin, json={"name": "HIJACKED"})
    assert _problem(sibling, 404)["detail"] == _problem(unknown, 404)["detail"]
    assert await snapshot() == before


async def test_an_admin_who_also_audits_wider_changes_only_its_own_part(app, client, world, snapshot) -> None:
    await add_person(app, world, "xa1_admin_auditor", XA1, ["admin", "auditor"], audit_root=PROVINCE)
    headers = world.auth("xa1_admin_auditor")
    assert (await client.get(f"/api/v1/units/{XA2}", headers=headers)).status_code == 200, "it may read"
    before = await snapshot()
    r = await client.patch(f"/api/v1/units/{XA2}", headers=headers, json={"name": "HIJACKED"})
    _problem(r, 404)
    r = await client.patch("/api/v1/units/000.01.01.H99", headers=headers, json={"parent": XA2})
    _problem(r, 404)
    assert await snapshot() == before


async def test_a_code_already_used_is_a_conflict_that_says_so(client, world, commune_admin, snapshot) -> None:
    before = await snapshot()
    inside = await client.patch("/api/v1/units/000.01.01.H99", headers=commune_admin, json={"code": "000.02.01.H99"})
    detail = _problem(inside, 409)["detail"]
    assert "000.02.01.H99 is already used by Chi bộ thôn Tây" in detail
    assert "retry" not in detail
    outside = await client.patch("/api/v1/units/000.01.01.H99", headers=commune_admin, json={"code": XA2})
    detail = _problem(outside, 409)["detail"]
    assert "already taken" in detail
    assert "Hồng Hà" not in detail
    assert await snapshot() == before
    # The province admin sees the whole province: the unit is named.
    named = await client.patch(f"/api/v1/units/{XA1}", headers=world.auth("admin"), json={"code": XA2})
    assert "Đảng ủy phường Hồng Hà" in _problem(named, 409)["detail"]
    # A free code is taken at once.
    ok = await client.patch("/api/v1/units/000.01.01.H99", headers=commune_admin, json={"code": "000.01.09.H99"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["code"] == "000.01.09.H99"

