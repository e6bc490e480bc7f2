"""``docexchange mail test``: the transcript an operator reads against a new Zimbra."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from service.mail.cli import add_commands
from service.settings import Settings

from .conftest import MAIL_FROM
from .pki import Pki
from .smtpserver import PASSWORD, USERNAME, SubmissionServer


def _run(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="docexchange")
    add_commands(parser.add_subparsers(dest="command", required=True), lambda: settings)
    args = parser.parse_args(list(argv))
    return int(args.func(args))


def _settings(server: SubmissionServer, pki: Pki, tmp_path: Path, password: str) -> Settings:
    return Settings(smtp_host="127.0.0.1", smtp_port=server.port, smtp_username=USERNAME, smtp_password=password,
                    smtp_ca_file=pki.ca_pem, mail_from=MAIL_FROM, data_dir=tmp_path, smtp_timeout_s=5)


def test_mail_test_prints_every_server_answer(smtp_server: SubmissionServer, pki: Pki, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(_settings(smtp_server, pki, tmp_path, PASSWORD), "mail", "test", "vanthu@xa.vn") == 0
    out = capsys.readouterr().out
    for stage, code in [("CONNECT", 220), ("EHLO", 250), ("STARTTLS", 220), ("AUTH", 235), ("MAIL", 250),
                        ("RCPT", 250), ("DATA", 250), ("QUIT", 221)]:
        assert any(line.startswith(stage) and f" {code}" in line for line in out.splitlines()), stage
    assert PASSWORD not in out
    assert len(smtp_server.handler.messages) == 1


def test_mail_test_shows_a_bad_password_as_535(smtp_server: SubmissionServer, pki: Pki, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(_settings(smtp_server, pki, tmp_path, "wrong"), "mail", "test", "vanthu@xa.vn") == 1
    out = capsys.readouterr().out
    assert "535" in out
    assert "NOT DELIVERED" in out
    assert "wrong" not in out
