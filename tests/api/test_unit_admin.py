"""An admin manages the units below its own: its own unit's name, level, code and seal are the
business of the admin of the unit above it (or of the operator); its mailboxes are its own."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import World
from tests.units.conftest import PROVINCE, XA1, add_person

BRANCH = "000.01.01.H99"  # Chi bộ thôn Đông, under commune 1, without a seal
UNITS = "/api/v1/units"


@pytest.fixture
async def branch_admin(app: Any, world: World) -> dict[str, str]:
    await add_person(app, world, "cb_admin", BRANCH, ["admin", "clerk"])
    return world.auth("cb_admin")


async def _tree(client: Any, world: World) -> list[dict[str, Any]]:
    r = await client.get(UNITS, headers=world.auth("admin"))
    assert r.status_code == 200, r.text
    units: list[dict[str, Any]] = r.json()["units"]
    return units


def _refusal(r: Any) -> str:
    assert r.status_code == 403, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    detail: str = r.json()["detail"]
    return detail


@pytest.mark.parametrize("how", ["patch", "import"])
async def test_a_branch_admin_cannot_give_its_own_branch_a_seal_and_the_provinces_name(client, world, branch_admin,
                                                                                       how) -> None:
    before = await _tree(client, world)
    if how == "patch":
        r = await client.patch(f"{UNITS}/{BRANCH}", headers=branch_admin,
                               json={"has_seal": True, "name": "Tỉnh ủy Hà Sơn", "level": "Tỉnh ủy"})
    else:  # with a new unit in the same file: nothing of it is written either
        r = await client.post(f"{UNITS}/import", headers=branch_admin, json=[
            {"code": BRANCH, "name": "Tỉnh ủy Hà Sơn", "level": "Tỉnh ủy", "has_seal": True},
            {"code": "000.09.01.H99", "name": "Tổ 1", "level": "Tổ", "parent_code": BRANCH}])
    detail = _refusal(r)
    assert f"unit {BRANCH} is your own unit" in detail
    assert f"an administrator of the unit above it ({XA1}) or the operator" in detail
    assert "name, level, seal" in detail
    assert await _tree(client, world) == before


@pytest.mark.parametrize(("field", "value"), [("name", "Chi bộ mới"), ("level", "Đảng ủy"),
                                              ("code", "000.01.09.H99"), ("has_seal", True)])
async def test_each_of_its_own_units_fields_is_refused_by_patch(client, world, branch_admin, field, value) -> None:
    before = await _tree(client, world)
    r = await client.patch(f"{UNITS}/{BRANCH}", headers=branch_admin, json={field: value})
    assert "is your own unit" in _refusal(r)
    assert r.json()["fields"] == ["seal" if field == "has_seal" else field]
    assert await _tree(client, world) == before


async def test_an_admin_keeps_its_own_units_mailboxes_up_to_date(client, world, branch_admin) -> None:
    r = await client.patch(f"{UNITS}/{BRANCH}", headers=branch_admin, json={"mailboxes": ["vanthu@dong.vn"]})
    assert r.status_code == 200, r.text
    r = await client.post(f"{UNITS}/import", headers=branch_admin, json=[
        {"code": BRANCH, "name": "Chi bộ thôn Đông", "level": "Chi bộ", "parent_code": XA1,
         "mailboxes": ["bithu@dong.vn", "vanthu@dong.vn"]}])
    assert r.status_code == 200, r.text
    unit = (await client.get(f"{UNITS}/{BRANCH}", headers=world.auth("admin"))).json()
    assert (unit["mailboxes"], unit["has_seal"], unit["name"]) == (["bithu@dong.vn", "vanthu@dong.vn"], False,
                                                                   "Chi bộ thôn Đông")


async def test_its_own_unit_sent_back_as_it_is_is_no_change(client, branch_admin) -> None:
    r = await client.patch(f"{UNITS}/{BRANCH}", headers=branch_admin,
                           json={"name": " Chi bộ thôn Đông ", "level": "Chi bộ", "code": BRANCH.lower(),
                                 "has_seal": False})
    assert r.status_code == 200, r.text


async def test_the_admin_of_the_unit_above_renames_the_branch_and_gives_it_a_seal(app, client, world) -> None:
    await add_person(app, world, "xa1_admin", XA1, ["admin"])
    r = await client.patch(f"{UNITS}/{BRANCH}", headers=world.auth("xa1_admin"),
                           json={"has_seal": True, "name": "Đảng ủy bộ phận thôn Đông"})
    assert r.status_code == 200, r.text
    assert (r.json()["has_seal"], r.json()["name"]) == (True, "Đảng ủy bộ phận thôn Đông")


async def test_the_province_admin_leaves_the_provinces_name_to_the_operator(client, world) -> None:
    before = await _tree(client, world)
    r = await client.patch(f"{UNITS}/{PROVINCE}", headers=world.auth("admin"), json={"name": "Tỉnh ủy khác"})
    detail = _refusal(r)
    assert "only by the operator (docexchange units import" in detail
    assert await _tree(client, world) == before
