"""`docexchange users|tokens|audit ...` run as a real subprocess against a fresh SQLite data directory."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from service.storage.migrate import alembic_config

ROOT = Path(__file__).resolve().parents[1]
UNIT = "000.00.01.H99"
ADMIN = "admin.tinhuy"
UNITS = [
    {"code": "000.00.00.H99", "name": "Tỉnh ủy Hà Sơn", "level": "Tỉnh ủy"},
    {"code": UNIT, "name": "Đảng ủy xã Tân Lập", "level": "Xã", "parent_code": "000.00.00.H99"},
]


def _run(data_dir: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    # Only this test's settings: a DOCEX_DATABASE_URL of the caller would point elsewhere.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCEX_")}
    env.update(DOCEX_DATA_DIR=str(data_dir), DOCEX_EMBEDDED_WORKER="false", **settings)
    return subprocess.run([sys.executable, "-m", "service.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def _rows(data_dir: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(data_dir / "docexchange.db") as conn:
        return conn.execute(sql).fetchall()


def _refused(done: subprocess.CompletedProcess[str]) -> str:
    """The refusal's one line on stderr, after checking it is a usage error and not a crash."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated data directory with two units and an admin, made once and copied per test."""
    data_dir = tmp_path_factory.mktemp("cli-template") / "data"
    units_file = data_dir.parent / "units.json"
    units_file.write_text(json.dumps(UNITS), encoding="utf-8")
    for args in (("units", "import", str(units_file)),
                 ("users", "create", "--unit", UNIT, "--username", ADMIN, "--name", "Quản trị", "--role", "admin")):
        done = _run(data_dir, *args)
        assert done.returncode == 0, done.stderr
    return data_dir


@pytest.fixture
def data_dir(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "data"))


def test_token_for_30_days_expires_in_vietnam_time(data_dir: Path) -> None:
    done = _run(data_dir, "tokens", "create", "--username", ADMIN, "--days", "30")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("dx_")
    expires = re.search(r"expires (\S+);", done.stderr)
    assert expires is not None, done.stderr
    assert expires.group(1).endswith("+07:00")
    left = datetime.fromisoformat(expires.group(1)) - datetime.now(UTC)
    assert timedelta(days=30) - timedelta(minutes=5) < left <= timedelta(days=30)
    assert _rows(data_dir, "SELECT count(*) FROM api_token") == [(1,)]


@pytest.mark.parametrize("days", ["99999999", "5000", "0", "-5"])
def test_token_days_outside_the_api_limit_are_refused_and_no_token_is_issued(data_dir: Path, days: str) -> None:
    message = _refused(_run(data_dir, "tokens", "create", "--username", ADMIN, "--days", days))
    assert message.startswith("error: --days: ")
    assert ("3650" if int(days) > 1 else "greater than or equal to 1") in message
    assert _rows(data_dir, "SELECT count(*) FROM api_token") == [(0,)]


@pytest.mark.parametrize(("option", "args", "says"), [
    ("--username", ["--username", "  ", "--name", ""], "must not be blank"),
    ("--username", ["--username", "van\x01thu", "--name", "Văn thư"], "control character U+0001"),
    ("--email", ["--username", "vanthu", "--name", "Văn thư", "--email", "not-an-email"], "not an e-mail address"),
])
def test_users_create_refuses_what_the_api_refuses_and_adds_nobody(
        data_dir: Path, option: str, args: list[str], says: str) -> None:
    message = _refused(_run(data_dir, "users", "create", "--unit", UNIT, "--role", "clerk", *args))
    assert message.startswith(f"error: {option}: ")
    assert says in message
    assert _rows(data_dir, "SELECT username FROM app_user") == [(ADMIN,)]


def test_the_operator_deactivates_a_user_and_sees_their_tokens(data_dir: Path) -> None:
    issued = _run(data_dir, "tokens", "create", "--username", ADMIN.upper(), "--label", "máy chủ")
    assert issued.returncode == 0, issued.stderr
    token_id = re.search(r"token id (\w+)", issued.stderr)
    assert token_id is not None
    done = _run(data_dir, "users", "update", "--username", ADMIN, "--deactivate", "--position", "Nghỉ hưu")
    assert done.returncode == 0, done.stderr
    assert _rows(data_dir, "SELECT active, position FROM app_user") == [(0, "Nghỉ hưu")]

    listed = _run(data_dir, "users", "list", "--unit", UNIT)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [f"{ADMIN}\t{UNIT}\tadmin\tQuản trị  (deactivated)"]
    tokens = _run(data_dir, "tokens", "list", "--username", ADMIN)
    assert tokens.returncode == 0, tokens.stderr
    assert tokens.stdout.startswith(f"{token_id.group(1)}\tactive\texpires ")
    assert tokens.stdout.rstrip().endswith("máy chủ")
    assert "dx_" not in tokens.stdout


def test_granting_the_signer_role_revokes_the_users_tokens(data_dir: Path) -> None:
    assert _run(data_dir, "tokens", "create", "--username", ADMIN).returncode == 0
    done = _run(data_dir, "users", "update", "--username", ADMIN, "--role", "admin", "--role", "signer")
    assert done.returncode == 0, done.stderr
    assert "1 tokens revoked" in done.stdout
    assert _rows(data_dir, "SELECT count(*) FROM api_token WHERE revoked_at IS NULL") == [(0,)]


@pytest.mark.parametrize(("args", "says"), [
    (["--username", "nobody", "--activate"], "no user 'nobody'"),
    (["--username", ADMIN], "--audit-root, --activate or --deactivate"),  # nothing to change: the options named
    (["--username", ADMIN, "--audit-root", UNIT], "only an auditor"),
    (["--username", ADMIN, "--email", "x"], "not an e-mail address"),
])
def test_users_update_refuses_with_one_line_and_changes_nothing(data_dir: Path, args: list[str], says: str) -> None:
    before = _rows(data_dir, "SELECT * FROM app_user")
    done = _run(data_dir, "users", "update", *args)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert says in done.stderr
    assert _rows(data_dir, "SELECT * FROM app_user") == before


def test_audit_verify_without_a_database_says_to_create_it_and_writes_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    message = _refused(_run(missing, "audit", "verify"))
    assert "docexchange db upgrade" in message
    assert "DOCEX_DATA_DIR" in message
    assert not missing.exists()


@pytest.mark.parametrize("command", [("mail", "list"), ("mail", "retry", "0" * 26), ("mail", "sweep-overdue")])
def test_mail_commands_without_a_database_say_what_to_do_and_create_nothing(tmp_path: Path, command) -> None:
    missing = tmp_path / "no-such-dir"
    message = _refused(_run(missing, *command))
    assert "docexchange db upgrade" in message
    assert not missing.exists()


@pytest.mark.parametrize(("url", "says"), [
    ("postgresql+asyncpg://postgres@127.0.0.1:5432/docex_no_such_database", 'database "docex_no_such_database"'),
    ("bogus://x", "Can't load plugin"),
])
@pytest.mark.parametrize("command", [("db", "upgrade"), ("audit", "verify"), ("units", "export")])
def test_a_database_url_that_leads_nowhere_is_one_line_not_a_traceback(tmp_path: Path, url, says, command) -> None:
    if url.startswith("postgresql") and not os.environ.get("DOCEX_TEST_POSTGRES_URL"):
        pytest.skip("needs the PostgreSQL server of DOCEX_TEST_POSTGRES_URL")
    message = _refused(_run(tmp_path, *command, DOCEX_DATABASE_URL=url))
    assert says in message
    assert "DOCEX_DATABASE_URL" in message


@pytest.mark.parametrize(("command", "table"), [(("mail", "list"), "outbox_event"),
                                                (("mail", "sweep-overdue"), "delivery")])
def test_mail_commands_on_a_damaged_database_name_the_missing_table(data_dir: Path, command, table) -> None:
    with sqlite3.connect(data_dir / "docexchange.db") as conn:
        conn.execute(f"DROP TABLE {table}")
    message = _refused(_run(data_dir, *command))
    assert f"no such table: {table}" in message


def test_audit_verify_without_the_audit_table_is_not_reported_as_a_broken_chain(data_dir: Path) -> None:
    with sqlite3.connect(data_dir / "docexchange.db") as conn:
        conn.execute("DROP TABLE audit_entry")
    message = _refused(_run(data_dir, "audit", "verify"))
    assert "no such table: audit_entry" in message
    assert "docexchange db upgrade" in message


@pytest.mark.parametrize("port", ["99999", "0", "-1", "http"])
def test_serve_refuses_a_port_that_is_not_one(tmp_path: Path, port: str) -> None:
    # 99999 used to be served on 34463 (taken modulo 65536), where nobody would look.
    done = _run(tmp_path, "serve", "--port", port)
    assert done.returncode == 2
    assert "give a number from 1 to 65535" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_setting_is_named_by_its_variable_and_its_value_is_not_shown(tmp_path: Path) -> None:
    done = _run(tmp_path / "data", "audit", "verify", DOCEX_DATABASE_POOL_SIZE="many",
                DOCEX_KEY_PASSPHRASE="x" * 5000, DOCEX_VERIFY_TIMEOUT_S="-1")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert any(line.startswith("error: DOCEX_DATABASE_POOL_SIZE: ") and "integer" in line for line in lines), lines
    assert any(line.startswith("error: DOCEX_VERIFY_TIMEOUT_S: ") and "greater than 0" in line for line in lines)
    assert "many" not in done.stderr
    assert not (tmp_path / "data").exists(), "nothing created"


def test_serve_leaves_the_schema_alone_when_auto_migrate_is_off(tmp_path: Path) -> None:
    # The operations guide: run `docexchange db upgrade` once per release, DOCEX_AUTO_MIGRATE=false
    # on the instances. `serve` migrated anyway, so instances started together raced each other
    # (all but one refused to start) and a new instance upgraded a database older instances
    # still served.
    data = tmp_path / "data"
    data.mkdir()
    config = alembic_config(f"sqlite+aiosqlite:///{data / 'docexchange.db'}")
    command.upgrade(config, "0009")  # the schema of the release before
    head = ScriptDirectory.from_config(config).get_current_head()
    for auto_migrate, version in (("false", "0009"), ("true", head)):
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCEX_")}
        env.update(DOCEX_DATA_DIR=str(data), DOCEX_EMBEDDED_WORKER="false", DOCEX_AUTO_MIGRATE=auto_migrate)
        server = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port)], cwd=ROOT,
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while not _answers(f"http://127.0.0.1:{port}/healthz"):
                assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        finally:
            server.terminate()
            server.wait(30)
        assert _rows(data, "SELECT version_num FROM alembic_version") == [(version,)], auto_migrate


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
