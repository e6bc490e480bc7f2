"""The evidence ZIP: every file listed in the manifest with a correct SHA-256."""

from __future__ import annotations

import hashlib
import json
import zipfile

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from service.signing import build_evidence_zip
from tests.signing.conftest import Env
from tests.signing.test_report_html import sealed_report

pytestmark = pytest.mark.asyncio


async def test_zip_holds_document_report_chain_revocation_history(env: Env) -> None:
    sealed, report = await sealed_report(env, "evidence")
    root_der = env.pki.root_cert.public_bytes(Encoding.DER)
    crl = env.pki.build_crl()
    history = [{"at": "2026-01-02T08:00:00+07:00", "action": "sent", "by": "Văn thư"}]
    out = build_evidence_zip(
        sealed, report, history, env.tmp / "evidence.zip", certificates_der=[root_der], crls_der=[crl], ocsps_der=[]
    )
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        listed = {f["path"]: f for f in manifest["files"]}
        assert names == set(listed) | {"manifest.json"}
        for path, entry in listed.items():
            data = zf.read(path)
            assert (hashlib.sha256(data).hexdigest(), len(data)) == (entry["sha256"], entry["size"]), path
        assert zf.read("document/evidence-sealed.pdf") == sealed.read_bytes()
        assert json.loads(zf.read("report.json"))["verdict"] == "passed"
        assert "HỢP LỆ" in zf.read("report.html").decode()
        assert json.loads(zf.read("history.json")) == history
        certs = [x509.load_pem_x509_certificate(zf.read(n)) for n in names if n.startswith("certs/")]
        [crl_name] = [n for n in names if n.startswith("revocation/")]
        assert crl_name.endswith(".crl")
        assert zf.read(crl_name) == crl
    subjects = {c.subject.rfc4514_string() for c in certs}
    assert any("Nguyễn Văn An" in s for s in subjects)
    assert any("Tỉnh ủy" in s for s in subjects)
    assert any("Issuing CA" in s for s in subjects)
    assert any("Root CA" in s for s in subjects)
    assert len(certs) == len(subjects)  # no duplicates (root embedded and given)
    assert manifest["verdict"] == "passed"
    assert manifest["document_sha256"] == report.sha256
