"""PostgreSQL connections dropped behind the pool's back (a restart, a firewall) are
replaced before a request uses them."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from service.storage import db as storage_db
from tests.conftest import _pg_admin


@pytest.fixture
def db_url(request, pg_database) -> str:  # PostgreSQL only: this is about its pool
    from tests.conftest import _truncate

    asyncio.run(_truncate(pg_database))
    return pg_database


async def test_requests_after_the_server_dropped_every_connection_succeed(
        app, client: httpx.AsyncClient, world, db_url, monkeypatch) -> None:
    assert (await client.get("/api/v1/inbox", headers=world.auth("xa1"))).status_code == 200
    name = db_url.rsplit("/", 1)[1]
    await _pg_admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")
    monkeypatch.setattr(storage_db, "IDLE_PING_S", 0.0)  # as if the pool had sat idle
    for who in ("xa1", "tu", "cb_dong"):
        r = await client.get("/api/v1/inbox", headers=world.auth(who))
        assert r.status_code == 200, r.text
