"""`python -m service.cli verify|pki ...` run as a real subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from service.signing import DevelopmentPki, DocumentSigner, FileKeyProvider, Placement, build_timestamper
from tests.signing.pdfs import write_sample_pdf

ROOT = Path(__file__).resolve().parents[2]
PASS = "cli-passphrase"
BOX = (340.0, 115.0, 500.0, 210.0)


def _run(keys: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DOCEX_KEYS_DIR": str(keys),
        "DOCEX_KEY_PASSPHRASE": PASS,
        "DOCEX_DATA_DIR": str(keys.parent / "data"),
    }
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _sign(keys: Path, user_id: str, out: Path) -> Path:
    import asyncio

    pki = DevelopmentPki.open(keys, PASS.encode())
    cert = keys / "personal" / f"{user_id}.pem"
    provider = FileKeyProvider(keys / "personal" / f"{user_id}.key.pem", cert, PASS.encode(), pki.chain_paths)
    trust = pki.trust_config()
    signer = DocumentSigner(provider, timestamper=build_timestamper(trust, pki.timestamp_response), trust=trust)
    asyncio.run(
        signer.sign_personal(
            write_sample_pdf(out.with_suffix(".in.pdf")), out, placement=Placement(box=BOX), signer_name="Trần Thị Bình"
        )
    )
    return out


def test_pki_commands_then_verify_json_html_and_revocation(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    init = _run(keys, "pki", "init")
    assert init.returncode == 0, init.stderr
    assert (keys / "root-ca.pem").exists()
    assert "SHA-256" in init.stdout
    unit = _run(keys, "pki", "issue-unit", "VPTU", "Văn phòng Tỉnh ủy")
    assert unit.returncode == 0, unit.stderr
    assert "Văn phòng Tỉnh ủy" in unit.stdout
    person = _run(keys, "pki", "issue-person", "u-77", "Trần Thị Bình", "binh@example.vn")
    assert person.returncode == 0, person.stderr
    serial = re.search(r"serial (\d+)", person.stdout).group(1)  # type: ignore[union-attr]

    signed = _sign(keys, "u-77", tmp_path / "signed.pdf")
    unsigned = write_sample_pdf(tmp_path / "unsigned.pdf")
    both = _run(keys, "verify", str(signed), str(unsigned), "--json")
    assert both.returncode == 1, both.stderr
    assert [r["verdict"] for r in json.loads(both.stdout)] == ["passed", "indeterminate"]

    html = tmp_path / "report.html"
    one = _run(keys, "verify", str(signed), "--html", str(html), "--trust", str(keys / "root-ca.pem"))
    assert one.returncode == 0, one.stderr
    assert one.stdout.startswith("PASSED")
    assert "signed.pdf" in one.stdout
    assert "Trần Thị Bình" in html.read_text("utf-8")

    revoke = _run(keys, "pki", "revoke", serial, "--reason", "key_compromise")
    assert revoke.returncode == 0, revoke.stderr
    # Revocation and signing times have one-second precision: keep them in distinct seconds.
    time.sleep(1.1)
    after = _sign(keys, "u-77", tmp_path / "after-revocation.pdf")
    failed = _run(keys, "verify", str(after))
    assert failed.returncode == 1, failed.stdout
    assert failed.stdout.startswith("FAILED")
    assert "REVOKED" in failed.stdout


def test_unknown_serial_and_missing_file_are_errors(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    assert _run(keys, "verify", str(tmp_path / "nope.pdf")).returncode == 2  # no PKI yet, no file
    DevelopmentPki.init(keys, PASS.encode())
    bad = _run(keys, "pki", "revoke", "12345")
    assert bad.returncode == 2
    assert "was not issued" in bad.stderr


def test_a_new_deployments_documents_and_keys_are_open_to_its_own_user_alone(tmp_path: Path) -> None:
    # Under the usual umask (022) the files would be readable by every local user; the
    # directories the service creates are its user's alone, and a key file is never open wider.
    keys, data = tmp_path / "keys", tmp_path / "data"
    previous = os.umask(0o022)
    try:
        for args in (("db", "upgrade"), ("pki", "init"), ("pki", "issue-person", "u-78", "Lê Văn An", "an@example.vn")):
            done = _run(keys, *args)
            assert done.returncode == 0, done.stderr
    finally:
        os.umask(previous)
    assert (data / "docexchange.db").exists()
    for folder in (data, keys, keys / "personal"):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    key_files = sorted(keys.rglob("*.key.pem"))
    assert len(key_files) >= 4, key_files  # root CA, issuing CA, TSA, OCSP responder, the person's
    assert {f.stat().st_mode & 0o777 for f in key_files} == {0o600}
