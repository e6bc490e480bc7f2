"""Signing through the API by role, in Decree 30's order, verified on arrival, and
accepted by two independent verifiers (poppler's pdfsig and OpenSSL)."""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from tests.factories.pdf import make_pdf, metadata, upload_form
from tests.factories.signatures import byte_range_signatures

BOX = [330, 120, 500, 200]


async def _upload(client, world, who: str = "xa1", number: str = "50-CV/ĐU", **kw):
    r = await client.post("/api/v1/documents", headers=world.auth(who), **upload_form(metadata(number), **kw))
    assert r.status_code == 201, r.text
    return r.json()


async def _sign_and_seal(client, world, doc_id: str) -> None:
    r = await client.post(f"/api/v1/documents/{doc_id}/signatures/personal", headers=world.auth("xa1_signer"),
                          json={"page": 0, "box": BOX})
    assert r.status_code == 201, r.text
    r = await client.post(f"/api/v1/documents/{doc_id}/signatures/organisation", headers=world.auth("xa1"), json={})
    assert r.status_code == 201, r.text



async def test_signed_and_sealed_document_passes_here_and_elsewhere(client, world, tmp_path: Path,
                                                                    dev_keys: Path) -> None:
    doc = await _upload(client, world)
    await _sign_and_seal(client, world, doc["id"])
    sent = await client.post(f"/api/v1/documents/{doc['id']}/send", headers=world.auth("xa1"),
                             json={"recipients": ["000.01.01.H99"]})
    assert sent.status_code == 200, sent.text

    # The recipient has the report made on arrival: both signatures passed.
    report = (await client.get(f"/api/v1/documents/{doc['id']}/verification", headers=world.auth("cb_dong"))).json()
    assert report["verdict"] == "passed", report
    assert [s["indication"] for s in report["signatures"]] == ["TOTAL_PASSED", "TOTAL_PASSED"]
    assert report["fields_counted"] == 2
    sigs = (await client.get(f"/api/v1/documents/{doc['id']}/signatures", headers=world.auth("xa1"))).json()
    assert [s["kind"] for s in sigs["signatures"]] == ["personal", "organisation"]

    pdf = (await client.get(f"/api/v1/documents/{doc['id']}/content", headers=world.auth("cb_dong"))).content
    signed = tmp_path / "signed.pdf"
    signed.write_bytes(pdf)
    if shutil.which("pdfsig"):
        out = subprocess.run(["pdfsig", str(signed)], capture_output=True, text=True, check=False).stdout
        assert out.count("Signature is Valid.") == 2, out
        assert "Digest Mismatch" not in out, out
    if shutil.which("openssl"):
        for i, (sig, content) in enumerate(byte_range_signatures(pdf)):
            (tmp_path / f"s{i}.der").write_bytes(sig)
            (tmp_path / f"c{i}.bin").write_bytes(content)
            done = subprocess.run(["openssl", "cms", "-verify", "-inform", "DER", "-in", str(tmp_path / f"s{i}.der"),
                                   "-content", str(tmp_path / f"c{i}.bin"), "-binary", "-purpose", "any",
                                   "-CAfile", str(dev_keys / "root-ca.pem"), "-out", "/dev/null"],
                                  capture_output=True, text=True, check=False)
            assert done.returncode == 0, done.stderr


async def test_order_roles_and_seal_rules(client, world) -> None:
    doc = await _upload(client, world)
    url = f"/api/v1/documents/{doc['id']}/signatures"
    seal_first = await client.post(f"{url}/organisation", headers=world.auth("xa1"), json={})
    assert seal_first.status_code == 409
    assert "personal signature comes first" in seal_first.json()["detail"]
    # Naming a field does not stand in for the leader's signature.
    named = await client.post(f"{url}/organisation", headers=world.auth("xa1"), json={"personal_field": "Empty1"})
    assert named.status_code == 409
    assert "personal signature comes first" in named.json()["detail"]
    clerk_personal = await client.post(f"{url}/personal", headers=world.auth("xa1"), json={"box": BOX})
    assert clerk_personal.status_code == 403
    await _sign_and_seal(client, world, doc["id"])
    again = await client.post(f"{url}/personal", headers=world.auth("xa1_signer"), json={"box": BOX})
    assert again.status_code == 409
    assert "locked" in again.json()["detail"]
    # A branch holds no seal: it cannot apply an organisation signature.
    branch_doc = await _upload(client, world, "cb_dong", "4-CV/CB")
    r = await client.post(f"/api/v1/documents/{branch_doc['id']}/signatures/organisation",
                          headers=world.auth("cb_dong"), json={})
    assert r.status_code == 403
    assert "no seal" in r.json()["detail"]
    history = (await client.get(f"/api/v1/documents/{doc['id']}/history", headers=world.auth("xa1"))).json()
    assert [e["action"] for e in history["entries"]][1:3] == ["document.signed.personal",
                                                              "document.signed.organisation"]


async def test_a_signed_file_uploaded_as_is_is_fully_verified_on_sending(client, world) -> None:
    """The upload's quick scan sees the signatures: sending runs the full verification."""
    first = await _upload(client, world)
    await _sign_and_seal(client, world, first["id"])
    pdf = (await client.get(f"/api/v1/documents/{first['id']}/content", headers=world.auth("xa1"))).content
    again = await _upload(client, world, number="51-CV/ĐU", pdf=pdf)
    sent = await client.post(f"/api/v1/documents/{again['id']}/send", headers=world.auth("xa1"),
                             json={"recipients": ["000.01.01.H99"]})
    assert sent.status_code == 200, sent.text
    report = (await client.get(f"/api/v1/documents/{again['id']}/verification", headers=world.auth("cb_dong"))).json()
    assert report["verdict"] == "passed", report
    assert [s["indication"] for s in report["signatures"]] == ["TOTAL_PASSED", "TOTAL_PASSED"]


async def test_attachment_gets_the_text_seal_and_verifies(client, world, tmp_path: Path) -> None:
    doc = await _upload(client, world, attachments=[("phu-luc.pdf", make_pdf("Phu luc 01"))])
    att = doc["attachments"][0]
    r = await client.post(f"/api/v1/documents/{doc['id']}/attachments/{att['id']}/signature", headers=world.auth("xa1"))
    assert r.status_code == 201, r.text
    signed = await client.get(f"/api/v1/documents/{doc['id']}/attachments/{att['id']}", headers=world.auth("xa1"))
    report = await client.post("/api/v1/verify", headers={**world.auth("xa2"), "content-type": "application/pdf"},
                               content=signed.content)
    assert report.json()["verdict"] == "passed", report.text


async def test_verify_any_pdf_never_passes_a_changed_or_broken_file(client, world) -> None:
    doc = await _upload(client, world)
    await _sign_and_seal(client, world, doc["id"])
    pdf = (await client.get(f"/api/v1/documents/{doc['id']}/content", headers=world.auth("xa1"))).content
    tampered = bytearray(pdf)
    pos = pdf.index(b"trang 1")
    tampered[pos] = ord("T")
    for data in (bytes(tampered), pdf + b"\n% appended after signing\n", b"%PDF-1.7\n garbage"):
        r = await client.post("/api/v1/verify", headers={**world.auth("xa2"), "content-type": "application/pdf"},
                              content=data)
        assert r.status_code == 200, r.text
        assert r.json()["verdict"] != "passed"
    empty = await client.post("/api/v1/verify", headers={**world.auth("xa2"), "content-type": "application/pdf"},
                              content=b"")
    assert empty.status_code == 422, "an empty body is no PDF to report on"
    changed = await client.post("/api/v1/verify", headers={**world.auth("xa2"), "content-type": "application/pdf"},
                                content=bytes(tampered))
    assert changed.json()["verdict"] == "failed"
    assert "HASH_FAILURE" in {s["sub_indication"] for s in changed.json()["signatures"]}


async def test_a_second_file_sent_before_the_first_ones_report_is_told_to_wait(app, client, world,
                                                                              tmp_path: Path) -> None:
    import asyncio

    from tests.signing.test_verify_fairness import _slow_file

    doc = await _upload(client, world)
    await _sign_and_seal(client, world, doc["id"])
    pdf = (await client.get(f"/api/v1/documents/{doc['id']}/content", headers=world.auth("xa1"))).content
    pdf_body = {**world.auth("xa2"), "content-type": "application/pdf"}
    assert (await client.post("/api/v1/verify", headers=pdf_body, content=pdf)).json()["verdict"] == "passed"
    me = (await client.get("/api/v1/me", headers=world.auth("xa2"))).json()["user_id"]
    async with _slow_file(tmp_path / "slow.pdf", pdf) as slow:
        first = asyncio.create_task(app.state.signing.verifier().verify_for(me, slow))
        await asyncio.sleep(0.2)
        second = await client.post("/api/v1/verify", headers=pdf_body, content=pdf)
        assert second.status_code == 429, second.text
        assert second.headers["content-type"].startswith("application/problem+json")
        assert int(second.headers["retry-after"]) >= 1
        assert "still being verified" in second.json()["detail"]
    await asyncio.wait_for(first, 30)
    again = await client.post("/api/v1/verify", headers=pdf_body, content=pdf)
    assert again.json()["verdict"] == "passed", "once the report is back, the next file is taken"


async def test_a_branch_given_the_provinces_name_and_a_seal_cannot_seal_as_the_province(client, world) -> None:
    # The seal certificate names the unit: two sealed units of one name would seal as each other.
    # The rename that would make them is refused, so the province keeps its seal.
    renamed = await client.patch("/api/v1/units/000.01.01.H99", headers=world.auth("admin"),
                                 json={"name": "TỈNH ỦY HÀ SƠN", "has_seal": True})
    assert renamed.status_code == 409, renamed.text
    assert renamed.headers["content-type"].startswith("application/problem+json")
    assert "already named" in renamed.json()["detail"]
    branch = await client.get("/api/v1/units/000.01.01.H99", headers=world.auth("admin"))
    assert (branch.json()["name"], branch.json()["has_seal"]) == ("Chi bộ thôn Đông", False), "nothing was changed"
    given = await client.patch("/api/v1/units/000.01.01.H99", headers=world.auth("admin"), json={"has_seal": True})
    assert given.status_code == 200, given.text
    doc = await _upload(client, world, who="cb_dong", number="60-CV/CB",
                        attachments=[("phu-luc.pdf", make_pdf("Phu luc 01"))])
    att = doc["attachments"][0]["id"]
    # Nor with a Cyrillic "а" that only looks like the province's letter: refused when it seals.
    await client.patch("/api/v1/units/000.01.01.H99", headers=world.auth("admin"), json={"name": "Tỉnh ủy Hà Sơn"
                                                                                         .replace("à", "\u0430\u0300")})
    r = await client.post(f"/api/v1/documents/{doc['id']}/attachments/{att}/signature", headers=world.auth("cb_dong"))
    assert r.status_code == 409, r.text
    assert "U+0430" in r.json()["detail"]
    sigs = await client.get(f"/api/v1/documents/{doc['id']}/signatures", headers=world.auth("cb_dong"))
    assert sigs.json()["signatures"] == [], "nothing was signed"
    # Nor in fullwidth letters, which are Latin but not the letters the province's name is made of.
    fullwidth = "".join(chr(ord(ch) + 0xFEE0) if "A" <= ch <= "Z" else ch for ch in "TỈNH ỦY HÀ SƠN")
    renamed = await client.patch("/api/v1/units/000.01.01.H99", headers=world.auth("admin"), json={"name": fullwidth})
    assert renamed.status_code == 409, renamed.text
    # Once the branch has a name of its own again, its seal is applied.
    await client.patch("/api/v1/units/000.01.01.H99", headers=world.auth("admin"), json={"name": "Chi bộ thôn Đông"})
    r = await client.post(f"/api/v1/documents/{doc['id']}/attachments/{att}/signature", headers=world.auth("cb_dong"))
    assert r.status_code == 201, r.text


async def test_keys_that_cannot_be_opened_are_a_503_to_the_signer_and_their_cause_is_logged(app, client, world) -> None:
    # A passphrase that does not open the keys: the signer is told to ask the operator, and
    # the operator's log, not the answer, names the server's files.
    keys_dir = str(app.state.settings.keys_dir)
    app.state.settings = app.state.settings.model_copy(update={"key_passphrase": "not-the-passphrase"})
    doc = await _upload(client, world)
    logged: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logged.append(record.getMessage())

    signing_log, keep = logging.getLogger("docexchange.signing"), Keep()
    signing_log.addHandler(keep)
    try:
        r = await client.post(f"/api/v1/documents/{doc['id']}/signatures/personal",
                              headers=world.auth("xa1_signer"), json={"box": BOX})
    finally:
        signing_log.removeHandler(keep)
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "tell the operator" in r.json()["detail"]
    assert keys_dir not in r.text
    assert [line for line in logged if keys_dir in line], logged


async def test_uploaded_signature_image_and_bad_images(client, world) -> None:
    buf = io.BytesIO()
    Image.new("RGBA", (300, 120), (0, 0, 200, 0)).save(buf, "PNG")
    ok = await client.put("/api/v1/me/signature-image", headers=world.auth("xa1_signer"), content=buf.getvalue())
    assert ok.status_code == 204
    bad = await client.put("/api/v1/me/signature-image", headers=world.auth("xa1_signer"), content=b"GIF89a...")
    assert bad.status_code == 422
    assert "PNG" in bad.json()["detail"]
    not_signer = await client.put("/api/v1/me/signature-image", headers=world.auth("xa1"), content=buf.getvalue())
    assert not_signer.status_code == 403
    doc = await _upload(client, world)
    r = await client.post(f"/api/v1/documents/{doc['id']}/signatures/personal", headers=world.auth("xa1_signer"),
                          json={"box": BOX})
    assert r.status_code == 201


async def test_pki_publishes_crl_and_ca(client) -> None:
    from cryptography import x509

    crl = await client.get("/api/v1/pki/ca.crl")
    assert crl.status_code == 200
    assert x509.load_der_x509_crl(crl.content).issuer.rfc4514_string()
    ca = await client.get("/api/v1/pki/ca.pem")
    assert len(x509.load_pem_x509_certificates(ca.content)) == 2


@pytest.mark.parametrize("who", ["xa2"])
async def test_other_units_cannot_sign_or_read_reports(client, world, who) -> None:
    doc = await _upload(client, world)
    for path in ("signatures/personal", "signatures/organisation"):
        r = await client.post(f"/api/v1/documents/{doc['id']}/{path}", headers=world.auth(who), json={})
        assert r.status_code in (403, 404)
    r = await client.get(f"/api/v1/documents/{doc['id']}/verification", headers=world.auth(who))
    assert r.status_code == 404


async def test_a_report_made_under_older_verdict_rules_is_made_again(client, world, app) -> None:
    """A report stored before a verdict rule changed is not served again: reading it
    verifies the bytes anew under the rules in force, and the history says what it replaced."""
    from sqlalchemy import text

    doc = await _upload(client, world, number="51-CV/ĐU")
    url = f"/api/v1/documents/{doc['id']}/verification"
    first = (await client.get(url, headers=world.auth("xa1"))).json()
    assert first["verdict"] == "indeterminate"  # no signature yet
    rules = first["rules_version"]
    assert rules >= 2
    # What an older release left: the same bytes reported as passed, under rules not numbered yet.
    async with app.state.db.session() as s:
        await s.execute(text("UPDATE verification_record SET verdict = 'passed', rules_version = 0 "
                             "WHERE document_id = :d"), {"d": doc["id"]})
        await s.commit()

    again = (await client.get(url, headers=world.auth("xa1"))).json()
    assert (again["verdict"], again["rules_version"]) == ("indeterminate", rules)
    assert again["checked_at"] != first["checked_at"]
    history = (await client.get(f"/api/v1/documents/{doc['id']}/history", headers=world.auth("xa1"))).json()
    verified = [e["data"] for e in history["entries"] if e["action"] == "document.verified"]
    assert len(verified) == 2
    assert verified[-1] | {"supersedes": None} == {
        "sha256": doc["sha256"], "verdict": "indeterminate", "rules_version": rules, "signatures": 0,
        "supersedes": None, "previous_verdict": "passed", "previous_rules_version": 0}
    assert verified[-1]["supersedes"]
    # The new report stands: a third reading makes none.
    third = (await client.get(url, headers=world.auth("xa1"))).json()
    assert third["checked_at"] == again["checked_at"]

    # A send of the document is verified the same way: the arrival notice carries today's verdict.
    async with app.state.db.session() as s:
        await s.execute(text("UPDATE verification_record SET verdict = 'passed', rules_version = 0 "
                             "WHERE document_id = :d"), {"d": doc["id"]})
        await s.commit()
    sent = await client.post(f"/api/v1/documents/{doc['id']}/send", headers=world.auth("xa1"),
                             json={"recipients": ["000.01.01.H99"]})
    assert sent.status_code == 200, sent.text
    async with app.state.db.session() as s:
        payload = (await s.execute(text("SELECT payload FROM outbox_event WHERE document_id = :d AND kind = 'arrival'"),
                                   {"d": doc["id"]})).scalar_one()
    payload = payload if isinstance(payload, dict) else json.loads(payload)
    assert payload["verdict"] == "indeterminate"


async def test_a_signer_whose_certificate_was_revoked_signs_no_more(client, world, dev_keys) -> None:
    from cryptography import x509

    from service.signing import DevelopmentPki
    from tests.conftest import TEST_PASSPHRASE

    first = await _upload(client, world, number="70-CV/ĐU")
    r = await client.post(f"/api/v1/documents/{first['id']}/signatures/personal", headers=world.auth("xa1_signer"),
                          json={})
    assert r.status_code == 201, r.text
    signer_id = (await client.get("/api/v1/me", headers=world.auth("xa1_signer"))).json()["user_id"]
    cert = x509.load_pem_x509_certificate((dev_keys / "personal" / f"{signer_id}.pem").read_bytes())
    # What `docexchange pki revoke` does, from another process's point of view: the file changes.
    pki = DevelopmentPki.open(dev_keys, TEST_PASSPHRASE.encode())
    pki.revoke(cert.serial_number, "key_compromise")

    second = await _upload(client, world, number="71-CV/ĐU")
    r = await client.post(f"/api/v1/documents/{second['id']}/signatures/personal", headers=world.auth("xa1_signer"),
                          json={})

    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "revoked" in r.json()["detail"]
    listed = await client.get(f"/api/v1/documents/{second['id']}/signatures", headers=world.auth("xa1"))
    assert listed.json()["signatures"] == []
    # A new certificate issued to the signer (docexchange pki issue-person) signs at once.
    pki.issue_personal_cert(signer_id, "Người ký mới", "nguoiky@example.vn")
    r = await client.post(f"/api/v1/documents/{second['id']}/signatures/personal", headers=world.auth("xa1_signer"),
                          json={})
    assert r.status_code == 201, r.text
