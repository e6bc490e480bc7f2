"""Shared fixtures: a real database (SQLite file or PostgreSQL), the app, a small unit tree.

Every test that takes ``db_url`` runs on SQLite, and on PostgreSQL too when
DOCEX_TEST_POSTGRES_URL points at a server (CI sets it).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from service.api.app import create_app
from service.settings import Settings
from service.storage.db import Database
from service.storage.migrate import upgrade
from service.storage.tables import metadata

PG_URL = os.environ.get("DOCEX_TEST_POSTGRES_URL", "")
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    if not PG_URL:
        pytest.skip("PostgreSQL tests need DOCEX_TEST_POSTGRES_URL (e.g. postgresql+asyncpg://postgres@127.0.0.1/test)")
    name = f"docex_test_{uuid.uuid4().hex[:8]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    url = PG_URL.rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    yield url
    asyncio.run(_pg_admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


async def _pg_admin(statement: str) -> None:
    engine = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(statement))
    await engine.dispose()


async def _truncate(url: str) -> None:
    engine = create_async_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        await conn.execute(text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": "0" * 64})
    await engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "docexchange.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("pg_database")
    asyncio.run(_truncate(url))
    return url


@pytest.fixture(scope="session")
def dev_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One development PKI for the run (creating one costs seconds of RSA key generation)."""
    from service.signing import DevelopmentPki

    keys = tmp_path_factory.mktemp("keys")
    DevelopmentPki.init(keys, TEST_PASSPHRASE.encode(), "http://docexchange.test/api/v1/pki")
    return keys


TEST_PASSPHRASE = "test-passphrase-not-secret"


@pytest.fixture
def settings(tmp_path: Path, db_url: str, dev_keys: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=db_url, embedded_worker=False,
                    auto_migrate=False, keys_dir=dev_keys, key_passphrase=TEST_PASSPHRASE,
                    public_base_url="http://docexchange.test", max_upload_bytes=5 * 1024 * 1024,
                    log_level="WARNING")


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    db = Database(settings.effective_database_url, pool_size=4)
    yield db
    await db.dispose()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@dataclass
class World:
    """A province with two communes, their branches, and a token per role."""

    tokens: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)  # code by short name

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


TREE = [
    ("000.00.00.H99", "Tỉnh ủy Hà Sơn", "Tỉnh ủy", None, True),
    ("000.00.01.H99", "Đảng ủy xã Tân Lập", "Đảng ủy xã", "000.00.00.H99", True),
    ("000.00.02.H99", "Đảng ủy phường Hồng Hà", "Đảng ủy xã", "000.00.00.H99", True),
    ("000.01.01.H99", "Chi bộ thôn Đông", "Chi bộ", "000.00.01.H99", False),
    ("000.02.01.H99", "Chi bộ thôn Tây", "Chi bộ", "000.00.01.H99", False),
    ("000.03.01.H99", "Chi bộ Trường Tiểu học Tân Lập", "Chi bộ", "000.00.01.H99", False),
    ("000.01.02.H99", "Chi bộ khu phố 1", "Chi bộ", "000.00.02.H99", False),
]

PEOPLE = [  # key, unit code, roles
    ("admin", "000.00.00.H99", ["admin", "clerk"]),
    ("tu", "000.00.00.H99", ["clerk"]),
    ("auditor", "000.00.00.H99", ["auditor"]),
    ("xa1", "000.00.01.H99", ["clerk"]),
    ("xa1_signer", "000.00.01.H99", ["signer"]),
    ("xa2", "000.00.02.H99", ["clerk"]),
    ("cb_dong", "000.01.01.H99", ["clerk"]),
    ("cb_tay", "000.02.01.H99", ["clerk"]),
    ("cb_truong", "000.03.01.H99", ["clerk"]),
    ("cb_kp1", "000.01.02.H99", ["clerk"]),
]


async def build_world(db: Database) -> World:
    from service import auth, units

    world = World()
    async with db.session() as s:
        specs = [units.UnitSpec(code, name, level, parent, [f"u{code.replace('.', '')}@example.vn"], seal)
                 for code, name, level, parent, seal in TREE]
        await units.import_tree(s, specs)
        for key, code, roles in PEOPLE:
            unit = await units.get_unit(s, code)
            user = await auth.create_user(s, unit=unit, username=f"user.{key}", full_name=f"Người {key}",
                                          roles=roles)
            world.tokens[key] = (await auth.issue_token(s, user, days=1)).token
        await s.commit()
    return world


@pytest.fixture
async def world(app: Any) -> World:
    return await build_world(app.state.db)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://docexchange.test") as c:
        yield c
