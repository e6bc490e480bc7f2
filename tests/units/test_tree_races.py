"""Changes to the tree's shape at the same moment: each is checked against the tree the
other left, so no pair of moves makes a loop or breaks the paths."""

from __future__ import annotations

import asyncio

from tests.units.conftest import PROVINCE

UNITS = "/api/v1/units"


async def test_two_crossed_moves_at_once_leave_a_tree(client, world) -> None:
    admin = world.auth("admin")
    for n in range(5):
        a, b = f"900.00.{n:02d}.A99", f"900.00.{n:02d}.B99"
        r = await client.post(f"{UNITS}/import", headers=admin, json=[
            {"code": a, "name": f"Đảng ủy A{n}", "level": "Đảng ủy xã", "parent_code": PROVINCE},
            {"code": b, "name": f"Đảng ủy B{n}", "level": "Đảng ủy xã", "parent_code": PROVINCE}])
        assert r.status_code == 200, r.text

        moves = await asyncio.gather(client.patch(f"{UNITS}/{a}", headers=admin, json={"parent": b}),
                                     client.patch(f"{UNITS}/{b}", headers=admin, json={"parent": a}))

        assert sorted(m.status_code for m in moves) == [200, 422], [m.text for m in moves]
        refused = next(m for m in moves if m.status_code == 422).json()
        assert "own descendant" in refused["detail"]
        shown = {u: (await client.get(f"{UNITS}/{u}", headers=admin)).json() for u in (a, b)}
        province_id = (await client.get(f"{UNITS}/{PROVINCE}", headers=admin)).json()["id"]
        moved, stayed = (a, b) if moves[0].status_code == 200 else (b, a)
        assert shown[moved]["parent_id"] == shown[stayed]["id"]
        assert shown[stayed]["parent_id"] == province_id
        assert shown[moved]["depth"] == shown[stayed]["depth"] + 1
    export = (await client.get(f"{UNITS}/export", headers=admin)).json()
    again = await client.post(f"{UNITS}/import", headers=admin, json=export)
    assert again.status_code == 200, again.text  # the export is still a tree
