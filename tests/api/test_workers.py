"""`docexchange serve --workers N`: several API processes on one PostgreSQL database."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from tests.conftest import TEST_PASSPHRASE, build_world


def _env(settings, **extra: str) -> dict[str, str]:
    return {**os.environ, "DOCEX_DATABASE_URL": settings.effective_database_url,
            "DOCEX_DATA_DIR": str(settings.data_dir), "DOCEX_KEYS_DIR": str(settings.keys_dir),
            "DOCEX_KEY_PASSPHRASE": TEST_PASSPHRASE, "DOCEX_EMBEDDED_WORKER": "false", **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_several_workers_on_sqlite_are_refused_with_a_reason(settings) -> None:
    if not settings.effective_database_url.startswith("sqlite"):
        pytest.skip("about SQLite")
    done = subprocess.run([sys.executable, "-m", "service.cli", "serve", "--workers", "2"], env=_env(settings),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert "PostgreSQL" in done.stderr
    assert "one worker" in done.stderr


async def test_two_workers_on_postgresql_serve_the_same_data(settings, database) -> None:
    if settings.effective_database_url.startswith("sqlite"):
        pytest.skip("several workers need PostgreSQL")
    world = await build_world(database)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--workers", "2", "--port", str(port)],
                            env=_env(settings), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "the server did not start"
                await asyncio.sleep(0.2)
            workers = [p for p in psutil.Process(proc.pid).children(recursive=True) if "python" in p.name().lower()]
            assert len(workers) >= 2, "two API processes should be running"
            answers = await asyncio.gather(*[client.get("/api/v1/me", headers=world.auth(who))
                                             for who in ("tu", "xa1", "cb_dong", "auditor") * 5])
            assert {a.status_code for a in answers} == {200}
            assert {a.json()["roles"][0] for a in answers} == {"clerk", "auditor"}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
