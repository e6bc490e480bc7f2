"""Two-step signing with the client's own key, the evidence ZIP, the readable report."""

from __future__ import annotations

import base64
import io
import json
import uuid
import zipfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from service.signing import DevelopmentPki
from tests.conftest import TEST_PASSPHRASE
from tests.factories.pdf import metadata, upload_form


def _token(dev_keys: Path, name: str):
    """A signer's USB token: a key and certificate the service never holds."""
    pki = DevelopmentPki.open(dev_keys, TEST_PASSPHRASE.encode())
    issued = pki.issue_personal_cert(f"token-{uuid.uuid4().hex[:12]}", name, "token@example.vn")
    key = serialization.load_pem_private_key(issued.key_path.read_bytes(), TEST_PASSPHRASE.encode())
    chain = [x509.load_pem_x509_certificate(p.read_bytes()) for p in (issued.cert_path, *issued.chain_paths)]
    issued.key_path.unlink()  # it lives on the token from now on
    ders = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]
    return key, ders


async def _prepare(client, world, doc_id: str, chain: list[str]):
    r = await client.post(f"/api/v1/documents/{doc_id}/signatures/external", headers=world.auth("xa1_signer"),
                          json={"box": [330, 120, 500, 200], "certificate_chain": chain})
    assert r.status_code == 201, r.text
    return r.json()


async def test_two_step_signing_with_the_signers_own_token(client, world, dev_keys) -> None:
    # Another authority's certificate names the signer as it likes: upper case, no diacritics.
    key, chain = _token(dev_keys, "NGUOI XA1_SIGNER")
    doc = (await client.post("/api/v1/documents", headers=world.auth("xa1"), **upload_form(metadata()))).json()
    # Someone else's certificate (a colleague's token) is not the signer's signature.
    _, colleague = _token(dev_keys, "Trần Văn Khác")
    r = await client.post(f"/api/v1/documents/{doc['id']}/signatures/external", headers=world.auth("xa1_signer"),
                          json={"box": [330, 120, 500, 200], "certificate_chain": colleague})
    assert r.status_code == 422, r.text
    assert "Trần Văn Khác's, not yours" in r.json()["detail"]
    # A clerk may not sign at all: that is the answer, whatever certificate came with it.
    r = await client.post(f"/api/v1/documents/{doc['id']}/signatures/external", headers=world.auth("xa1"),
                          json={"box": [330, 120, 500, 200], "certificate_chain": colleague})
    assert r.status_code == 403, r.text
    prepared = await _prepare(client, world, doc["id"], chain)
    assert "state" not in prepared
    assert prepared["digest_algorithm"] == "sha256"

    # A wrong signature value is refused, and the session stays usable.
    wrong = key.sign(b"something else", padding.PKCS1v15(), hashes.SHA256())
    r = await client.post(f"/api/v1/signing-sessions/{prepared['session_id']}/complete",
                          headers=world.auth("xa1_signer"),
                          json={"signature_value": base64.b64encode(wrong).decode(), "certificate_chain": chain})
    assert r.status_code in (409, 422)
    assert r.headers["content-type"].startswith("application/problem+json")

    value = key.sign(base64.b64decode(prepared["to_be_signed"]), padding.PKCS1v15(), hashes.SHA256())
    done = await client.post(f"/api/v1/signing-sessions/{prepared['session_id']}/complete",
                             headers=world.auth("xa1_signer"),
                             json={"signature_value": base64.b64encode(value).decode(), "certificate_chain": chain})
    assert done.status_code == 201, done.text
    assert done.json()["kind"] == "personal"
    # The clerk seals on top of the token signature; both verify.
    seal = await client.post(f"/api/v1/documents/{doc['id']}/signatures/organisation", headers=world.auth("xa1"),
                             json={})
    assert seal.status_code == 201, seal.text
    report = (await client.get(f"/api/v1/documents/{doc['id']}/verification", headers=world.auth("xa1"))).json()
    assert report["verdict"] == "passed"
    assert "NGUOI XA1_SIGNER" in report["signatures"][0]["signer_cn"]
    again = await client.post(f"/api/v1/signing-sessions/{prepared['session_id']}/complete",
                              headers=world.auth("xa1_signer"),
                              json={"signature_value": base64.b64encode(value).decode(), "certificate_chain": chain})
    assert again.status_code == 409


async def test_evidence_zip_and_readable_report(client, world) -> None:
    doc = (await client.post("/api/v1/documents", headers=world.auth("xa1"), **upload_form(metadata()))).json()
    await client.post(f"/api/v1/documents/{doc['id']}/signatures/personal", headers=world.auth("xa1_signer"),
                      json={"box": [330, 120, 500, 200]})
    await client.post(f"/api/v1/documents/{doc['id']}/send", headers=world.auth("xa1"),
                      json={"recipients": ["000.01.01.H99"]})
    r = await client.get(f"/api/v1/documents/{doc['id']}/evidence", headers=world.auth("auditor"))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        names = zf.namelist()
        assert any(n.startswith("document/") and n.endswith(".pdf") for n in names)
        assert {"report.json", "report.html", "history.json", "manifest.json"} <= set(names)
        history = json.loads(zf.read("history.json"))
        assert [e["action"] for e in history][:3] == ["document.registered", "document.signed.personal",
                                                      "document.verified"]
        pdf_name = next(n for n in names if n.startswith("document/"))
        assert zf.read(pdf_name) == (await client.get(f"/api/v1/documents/{doc['id']}/content",
                                                      headers=world.auth("auditor"))).content
    html = await client.get(f"/api/v1/documents/{doc['id']}/verification", params={"format": "html"},
                            headers=world.auth("cb_dong"))
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert "<script" not in html.text.lower()
    assert "TOTAL_PASSED" in html.text
    other = await client.get(f"/api/v1/documents/{doc['id']}/evidence", headers=world.auth("xa2"))
    assert other.status_code == 404


async def test_the_evidence_holds_what_an_auditor_needs_to_check_the_verdict_offline(client, world) -> None:
    # The signer's chain up to the root, the timestamping authority behind the proven time, and
    # the revocation lists of both CAs, each signed by the CA it names.
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    doc = (await client.post("/api/v1/documents", headers=world.auth("xa1"), **upload_form(metadata()))).json()
    signed = await client.post(f"/api/v1/documents/{doc['id']}/signatures/personal", headers=world.auth("xa1_signer"),
                               json={"box": [330, 120, 500, 200]})
    assert signed.status_code == 201, signed.text
    r = await client.get(f"/api/v1/documents/{doc['id']}/evidence", headers=world.auth("xa1"))
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        certs = [x509.load_pem_x509_certificate(zf.read(n)) for n in zf.namelist() if n.startswith("certs/")]
        crls = [x509.load_der_x509_crl(zf.read(n)) for n in zf.namelist() if n.endswith(".crl")]
    by_subject = {c.subject: c for c in certs}
    signer = next(c for c in certs if "Người xa1_signer" in c.subject.rfc4514_string())
    chain = [signer]
    while chain[-1].issuer != chain[-1].subject:
        issuer = by_subject[chain[-1].issuer]  # every issuer is in the package
        chain[-1].verify_directly_issued_by(issuer)
        chain.append(issuer)
    assert "Root CA" in chain[-1].subject.rfc4514_string()
    stamping = [c for c in certs if any(
        ExtendedKeyUsageOID.TIME_STAMPING in ext.value for ext in c.extensions
        if isinstance(ext.value, x509.ExtendedKeyUsage))]
    assert stamping, "the timestamping authority's certificate"
    by_subject[stamping[0].issuer]  # and its issuer
    assert {crl.issuer for crl in crls} == {c.subject for c in chain[1:]}, "a CRL of each CA"
    for crl in crls:
        assert crl.is_signature_valid(by_subject[crl.issuer].public_key())
