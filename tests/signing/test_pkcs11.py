"""Signing through a real PKCS#11 token (SoftHSM2), key imported from the dev PKI."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from service.signing import (
    DocumentSigner,
    KeyProviderError,
    Pkcs11KeyProvider,
    Placement,
    SignatureLevel,
    SigningOptions,
    Verdict,
    build_timestamper,
)
from service.signing._x509 import decrypt_key
from tests.signing.conftest import PASSPHRASE, Env

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(
        shutil.which("softhsm2-util") is None, reason="softhsm2-util not installed (apt-get install softhsm2)"
    ),
    pytest.mark.skipif(
        shutil.which("pkcs11-tool") is None, reason="pkcs11-tool not installed (apt-get install opensc)"
    ),
]
MODULE = next(
    (
        p
        for p in ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
        if Path(p).exists()
    ),
    "/usr/lib/softhsm/libsofthsm2.so",
)
PIN = "1234"


def _tool(*args: str) -> None:
    subprocess.run(
        ["pkcs11-tool", "--module", MODULE, "--token-label", "docex", "--login", "--pin", PIN, *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def token(env: Env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh SoftHSM2 token 'docex' holding the personal key, its certificate and the issuing CA."""
    tmp = tmp_path_factory.mktemp("softhsm")
    (tmp / "tokens").mkdir()
    conf = tmp / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    mp = pytest.MonkeyPatch()
    mp.setenv("SOFTHSM2_CONF", str(conf))  # read by SoftHSM at C_Initialize: set before any load
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "docex", "--pin", PIN, "--so-pin", "5678"],
        check=True,
        capture_output=True,
    )
    key = decrypt_key(env.personal.key_path.read_bytes(), PASSPHRASE)
    key_der = tmp / "key.der"
    key_der.write_bytes(key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption()))
    _tool("--write-object", str(key_der), "--type", "privkey", "--id", "01", "--label", "signer")
    key_der.unlink()
    for path, label, ident in (
        (env.personal.cert_path, "signer", "01"),
        (env.personal.chain_paths[0], "issuing-ca", "02"),
    ):
        der = tmp / f"{label}.der"
        der.write_bytes(x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(Encoding.DER))
        _tool("--write-object", str(der), "--type", "cert", "--id", ident, "--label", label)
    yield "docex"
    mp.undo()


async def test_softhsm_key_signs_and_verifies(env: Env, token: str) -> None:
    keys = Pkcs11KeyProvider(MODULE, token, PIN, key_label="signer", chain_labels=("issuing-ca",))
    trust = env.trust()
    signer = DocumentSigner(keys, timestamper=build_timestamper(trust, env.pki.timestamp_response), trust=trust)
    out = env.tmp / "pkcs11-signed.pdf"
    try:
        result = await signer.sign_personal(
            env.sample("pkcs11.pdf"),
            out,
            placement=Placement(box=(340.0, 115.0, 500.0, 210.0)),
            signer_name="Nguyễn Văn An",
            options=SigningOptions(level=SignatureLevel.B_T, bytes_reserved=32 * 1024),
        )
    finally:
        await keys.aclose()
    assert "Nguyễn Văn An" in result.signer_subject
    report = await env.verifier.verify(out)
    assert report.verdict is Verdict.PASSED, [f.code for s in report.signatures for f in s.findings]
    [sig] = report.signatures
    assert sig.level == "B-T"
    # signer, issuing CA (pulled from the token into the CMS), root
    assert len(sig.chain) == 3
    assert "Issuing CA" in sig.chain[1].subject


async def test_wrong_pin_or_label_is_a_key_provider_error(env: Env, token: str) -> None:
    with pytest.raises(KeyProviderError):
        await Pkcs11KeyProvider(MODULE, token, "9999", key_label="signer").signer()
    with pytest.raises(KeyProviderError, match="Could not find"):
        await Pkcs11KeyProvider(MODULE, token, PIN, key_label="nobody").signer()
