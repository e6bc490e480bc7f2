"""PostgreSQL round trips of one upload and one send, statement by statement.

    python bench/trips.py [--postgres URL] [--size BYTES]

Runs the service in this process (the ASGI app under httpx, no network) against a fresh
database created beside URL (dropped afterwards), uploads and sends three documents the way
bench_core.py does, and lists what the third upload and send sent to PostgreSQL: every call
on asyncpg's connection and prepared statements (BEGIN and COMMIT are queries too).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from _common import UploadBody  # noqa: E402
from asyncpg import prepared_stmt  # noqa: E402
from bench_core import DEFAULT_PG, Docex, docex_env, pg_admin, seed  # noqa: E402

Trip = tuple[str, str]


def record_trips(into: list[Trip]) -> None:
    """Wrap the asyncpg calls that each make one round trip (a statement not yet prepared
    costs one more, for its preparation; these runs repeat the same statements)."""

    def wrap(cls: Any, name: str) -> None:
        original: Callable[..., Any] = getattr(cls, name)

        @functools.wraps(original)
        async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            query = args[0] if args and isinstance(args[0], str) else getattr(self, "_query", "")
            into.append((name, " ".join(str(query).split())[:90]))
            return await original(self, *args, **kwargs)

        setattr(cls, name, counted)

    for name in ("execute", "fetch", "fetchrow", "fetchval", "executemany", "copy_records_to_table"):
        wrap(asyncpg.Connection, name)
    for name in ("fetch", "fetchrow", "executemany"):
        wrap(prepared_stmt.PreparedStatement, name)


async def run(admin_url: str, size: int) -> tuple[list[Trip], list[Trip]]:
    trips: list[Trip] = []
    name = f"docex_trips_{uuid.uuid4().hex[:8]}"
    await pg_admin(admin_url, f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        token, _, _ = await seed(url, 1)
        with tempfile.TemporaryDirectory() as tmp:
            os.environ.update(docex_env(Path(tmp), url, 64 << 20))
            from service.api.app import create_app

            app = create_app()
            record_trips(trips)
            async with app.router.lifespan_context(app), httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://docex") as client:
                api, make = Docex(client, token), UploadBody(size)
                for n in range(3):
                    trips.clear()
                    doc = await api.upload(make(7000 + n, "HU"))
                    upload = list(trips)
                    trips.clear()
                    await api.send(doc, api.recipients)
                    send = list(trips)
    finally:
        await pg_admin(admin_url, f'DROP DATABASE "{name}" WITH (FORCE)')
    return upload, send


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--postgres", default=DEFAULT_PG, help="admin URL (a database is created beside it)")
    p.add_argument("--size", type=int, default=200 * 1024, help="PDF size in bytes (default 200 KB)")
    args = p.parse_args()
    upload, send = asyncio.run(run(args.postgres, args.size))
    for title, trips in (("upload", upload), (f"send to {len(Docex.recipients)} units", send)):
        print(f"{title}: {len(trips)} round trips")
        for call, query in trips:
            print(f"  {call:<12} {query}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
