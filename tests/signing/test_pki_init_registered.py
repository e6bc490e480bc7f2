"""`docexchange pki init` issues a seal certificate per sealing unit and one per signer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography import x509

from tests.conftest import TREE


async def test_pki_init_issues_for_every_seal_and_signer(world, settings, tmp_path: Path) -> None:
    keys = tmp_path / "fresh-keys"
    env = {**os.environ, "DOCEX_DATABASE_URL": settings.effective_database_url,
           "DOCEX_DATA_DIR": str(settings.data_dir), "DOCEX_KEYS_DIR": str(keys),
           "DOCEX_KEY_PASSPHRASE": "another-test-passphrase"}
    cmd = [sys.executable, "-m", "service.cli", "pki", "init"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    sealing = sorted(code for code, _, _, _, seal in TREE if seal)
    assert sorted(p.name.removesuffix(".pem") for p in (keys / "org").glob("*.pem")
                  if not p.name.endswith(".key.pem")) == sealing
    personal = [p for p in (keys / "personal").glob("*.pem") if not p.name.endswith(".key.pem")]
    assert len(personal) == 1  # the test world has one signer
    cert = x509.load_pem_x509_certificate(personal[0].read_bytes())
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "Người xa1_signer"
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert "issued 0 organisation certificates" in again.stdout, "a second run keeps existing certificates"
