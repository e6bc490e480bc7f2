"""A large unit file: the service keeps answering while it is imported, a file refused at
its last unit leaves nothing written, and units moved and created by one file all end up
where the file puts them."""

from __future__ import annotations

import asyncio
import time

from tests.units.conftest import XA1, XA2

IMPORT = "/api/v1/units/import"


def _csv(rows: list[str]) -> bytes:
    return ("code,name,level,parent_code\n" + "".join(r + "\n" for r in rows)).encode()


def _communes(count: int) -> bytes:
    """``count`` units: groups of 1,000, each a commune under the province and branches under it."""
    return _csv([f"BIG.{n // 1000}.{n % 1000},Chi bộ số {n},Chi bộ,"
                 + ("000.00.00.H99" if n % 1000 == 0 else f"BIG.{n // 1000}.0") for n in range(count)])


async def test_the_service_answers_while_a_large_file_is_imported(client, world) -> None:
    async def probe() -> float:
        await asyncio.sleep(0.05)  # the import is under way
        slowest = 0.0
        while not imported.done():
            started = time.perf_counter()
            assert (await client.get("/healthz")).status_code == 200
            slowest = max(slowest, time.perf_counter() - started)
            await asyncio.sleep(0.01)
        return slowest

    imported = asyncio.ensure_future(client.post(IMPORT, headers={**world.auth("admin"), "content-type": "text/csv"},
                                                 content=_communes(20_000)))
    slowest = await probe()
    assert (await imported).json() == {"created": 20_000, "updated": 0}
    assert slowest < 1.0, f"a health check waited {slowest:.1f} s"  # the whole import held the loop: 5 s and more
    again = await client.post(IMPORT, headers={**world.auth("admin"), "content-type": "text/csv"},
                              content=_communes(20_000))
    assert again.json() == {"created": 0, "updated": 20_000}


async def test_a_large_file_refused_at_its_last_unit_writes_nothing(client, world, snapshot) -> None:
    before = await snapshot()
    flat = [f"9.{n},Tổ {n},Tổ,{XA1}" for n in range(1200)]
    # 19 levels below the commune (level 2 of the tree): the last is one too many.
    chain = [f"8.{n},Tổ {n},Tổ,{'8.' + str(n - 1) if n else XA1}" for n in range(19)]
    r = await client.post(IMPORT, headers={**world.auth("admin"), "content-type": "text/csv"},
                          content=_csv(flat + chain))
    assert r.status_code == 422, r.text
    assert "a unit tree has at most 20 levels" in r.json()["detail"]
    assert await snapshot() == before


async def test_units_created_below_a_unit_the_same_file_moves_move_with_it(client, world) -> None:
    admin = world.auth("admin")
    created = [f"9.{n},Tổ {n},Tổ,000.01.01.H99" for n in range(1200)]  # below a branch of commune 1
    moved = f"{XA1},Đảng ủy xã Tân Lập,Đảng ủy xã,{XA2}"  # commune 1 goes under commune 2
    late = "7.1,Tổ con,Tổ con,9.1199"  # created after the move, below a unit created before it
    r = await client.post(IMPORT, headers={**admin, "content-type": "text/csv"}, content=_csv([*created, moved, late]))
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 1201, "updated": 1}
    under = (await client.get("/api/v1/units", headers=admin, params={"root": XA2, "level": "Tổ"})).json()
    assert under["count"] == 1200
    assert {u["parent_code"] for u in under["units"]} == {"000.01.01.H99"}
    late_unit = (await client.get("/api/v1/units/7.1", headers=admin)).json()
    assert late_unit["depth"] == 5  # below the province, commune 2, commune 1, the branch and Tổ 1199
    below = (await client.get("/api/v1/units", headers=admin, params={"root": "9.1199"})).json()
    assert [u["code"] for u in below["units"]] == ["9.1199", "7.1"]
