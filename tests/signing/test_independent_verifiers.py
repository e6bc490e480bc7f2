"""Personal signature + seal checked by pdfsig and OpenSSL; renders docs/img PNGs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from service.signing import Placement
from tests.factories.signatures import byte_range_signatures
from tests.signing.conftest import Env

pytestmark = pytest.mark.asyncio
BOX = (340.0, 115.0, 500.0, 210.0)
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


async def _sealed(env: Env) -> Path:
    personal, sealed = env.tmp / "iv-p.pdf", env.tmp / "iv-sealed.pdf"
    await env.signer_for(env.personal).sign_personal(
        env.sample("iv.pdf"), personal, placement=Placement(box=BOX), signer_name="Nguyễn Văn An")
    await env.signer_for(env.organisation).sign_organisation(personal, sealed, unit_name="Văn phòng Tỉnh ủy Hà Nội")
    return sealed


@pytest.mark.skipif(shutil.which("pdfsig") is None, reason="poppler-utils (pdfsig) not installed")
async def test_pdfsig_reports_every_signature_valid(env: Env) -> None:
    out = subprocess.run(["pdfsig", str(await _sealed(env))], capture_output=True, text=True, check=False).stdout
    assert out.count("Signature Validation: Signature is Valid.") == 2, out
    assert "Digest Mismatch" not in out



@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
async def test_openssl_cms_verifies_each_signature(env: Env) -> None:
    sealed = await _sealed(env)
    root = env.tmp / "root.pem"
    root.write_bytes(env.pki.root_cert.public_bytes(Encoding.PEM))
    sigs = byte_range_signatures(sealed.read_bytes())
    assert len(sigs) == 2
    for i, (sig, content) in enumerate(sigs):
        (env.tmp / f"sig{i}.der").write_bytes(sig)
        (env.tmp / f"content{i}.bin").write_bytes(content)
        proc = subprocess.run(
            ["openssl", "cms", "-verify", "-inform", "DER", "-in", str(env.tmp / f"sig{i}.der"),
             "-content", str(env.tmp / f"content{i}.bin"),
             "-binary", "-purpose", "any", "-CAfile", str(root), "-out", "/dev/null"],
            capture_output=True, text=True, check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert "Verification successful" in proc.stderr, proc.stderr


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils (pdftoppm) not installed")
async def test_render_signed_pages_for_docs(env: Env) -> None:
    # Renders into a temporary folder; DOCEX_RENDER_DOCS=1 refreshes the committed docs/img pictures.
    img = DOCS_IMG if os.environ.get("DOCEX_RENDER_DOCS") == "1" else env.tmp / "img"
    sealed = await _sealed(env)
    attachment = env.tmp / "att-signed.pdf"
    await env.signer_for(env.organisation).sign_attachment(
        env.sample("att.pdf"), attachment, number_notation="Số 12-CV/VPTU", unit_name="Văn phòng Tỉnh ủy")
    img.mkdir(parents=True, exist_ok=True)
    for pdf, name in ((sealed, "signing-page1"), (attachment, "signing-attachment")):
        subprocess.run(
            ["pdftoppm", "-png", "-r", "100", "-f", "1", "-l", "1", "-singlefile", str(pdf), str(img / name)],
            check=True,
        )
        assert (img / f"{name}.png").stat().st_size > 5000
