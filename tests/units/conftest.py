"""Fixtures for the unit tree's API tests: an admin of a commune, a snapshot of the tree."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.conftest import World

XA1, XA2, PROVINCE = "000.00.01.H99", "000.00.02.H99", "000.00.00.H99"
Snapshot = Callable[[], Awaitable[list[dict[str, Any]]]]


async def add_person(app: Any, world: World, key: str, code: str, roles: list[str],
                     audit_root: str | None = None) -> None:
    """A user of unit ``code`` with a token under ``world.tokens[key]``."""
    from service import auth, units

    async with app.state.db.session() as s:
        unit = await units.get_unit(s, code)
        root = await units.get_unit(s, audit_root) if audit_root else None
        user = await auth.create_user(s, unit=unit, username=f"user.{key}", full_name=f"Người {key}",
                                      roles=roles, audit_root=root)
        world.tokens[key] = (await auth.issue_token(s, user, days=1)).token
        await s.commit()


@pytest.fixture
async def commune_admin(app: Any, world: World) -> dict[str, str]:
    """The Authorization header of an admin of commune 1 (000.00.01.H99)."""
    await add_person(app, world, "xa1_admin", XA1, ["admin", "clerk"])
    return world.auth("xa1_admin")


@pytest.fixture
def snapshot(client: httpx.AsyncClient, world: World) -> Snapshot:
    """Every unit of the province as the province admin sees it: to show nothing changed."""
    async def take() -> list[dict[str, Any]]:
        r = await client.get("/api/v1/units", headers=world.auth("admin"))
        assert r.status_code == 200, r.text
        units: list[dict[str, Any]] = r.json()["units"]
        return units

    return take
