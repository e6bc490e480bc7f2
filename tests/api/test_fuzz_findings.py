"""Inputs found by fuzzing the running API (schemathesis and mutated files) that gave a 500,
held memory without bound, or let a unit lower in the tree stop the province sealing."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib

from asn1crypto import ocsp, pem, x509

from tests.factories.pdf import make_pdf, metadata, upload_form

BOX = [330, 120, 500, 200]


def _problem(r, status: int) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == status
    return str(r.json()["detail"])


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


# A PNG whose header and checksums are right but which holds no image data (no IDAT chunk):
# Pillow's verify() fails on it with an IndexError.
PNG_WITHOUT_DATA = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0))
                    + _chunk(b"IEND", b""))


async def test_a_png_without_image_data_is_refused_not_a_crash(client, world) -> None:
    for path, who in (("/api/v1/me/signature-image", "xa1_signer"), ("/api/v1/units/me/seal-image", "xa1")):
        r = await client.put(path, headers={**world.auth(who), "Content-Type": "image/png"}, content=PNG_WITHOUT_DATA)
        assert "damaged" in _problem(r, 422)


def _pdf_whose_root_leads_nowhere() -> bytes:
    # The trailer names object 9 as the catalog; there is none (pyHanko asserts it is a dictionary).
    pdf = make_pdf()
    assert b"/Root 1 0 R" in pdf
    return pdf.replace(b"/Root 1 0 R", b"/Root 9 0 R")


async def test_a_pdf_whose_catalog_is_missing_is_refused_when_signed(client, world) -> None:
    broken = _pdf_whose_root_leads_nowhere()
    r = await client.post("/api/v1/documents", headers=world.auth("xa1"),
                          **upload_form(metadata("90-CV/ĐU"), pdf=broken, attachments=[("phu-luc.pdf", broken)]))
    assert r.status_code == 201, r.text  # the upload checks the head and tail only
    doc = r.json()
    r = await client.post(f"/api/v1/documents/{doc['id']}/signatures/personal", headers=world.auth("xa1_signer"),
                          json={"page": 0, "box": BOX})
    assert "damaged" in _problem(r, 422)
    att = doc["attachments"][0]["id"]
    r = await client.post(f"/api/v1/documents/{doc['id']}/attachments/{att}/signature", headers=world.auth("xa1"))
    assert "damaged" in _problem(r, 422)
    sigs = await client.get(f"/api/v1/documents/{doc['id']}/signatures", headers=world.auth("xa1"))
    assert sigs.json()["signatures"] == [], "nothing was signed"


async def test_an_ocsp_request_no_response_can_hold_is_malformed_not_a_crash(client) -> None:
    chain = (await client.get("/api/v1/pki/ca.pem")).content
    issuing = next(c for c in (x509.Certificate.load(der) for _, _, der in pem.unarmor(chain, multiple=True))
                   if "Issuing" in c.subject.human_friendly)
    key_hash = hashlib.sha1(bytes(issuing.public_key["public_key"].contents[1:])).digest()
    name_hash = hashlib.sha1(issuing.subject.dump()).digest()

    def request(name: bytes, serial: int) -> bytes:
        return ocsp.OCSPRequest({"tbs_request": {"request_list": [{"req_cert": {
            "hash_algorithm": {"algorithm": "sha1"}, "issuer_name_hash": name, "issuer_key_hash": key_hash,
            "serial_number": serial}}]}}).dump()

    for body, expected in ((request(name_hash, 5), "successful"), (request(b"\x00", 5), "malformed_request"),
                           (request(b"", 5), "malformed_request"), (request(name_hash, -5), "malformed_request")):
        r = await client.post("/api/v1/pki/ocsp", content=body, headers={"Content-Type": "application/ocsp-request"})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/ocsp-response"
        assert ocsp.OCSPResponse.load(r.content)["response_status"].native == expected


async def test_a_form_of_many_text_fields_is_refused_before_it_fills_the_memory(client, world, settings) -> None:
    boundary = "many-fields"
    parts = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\n".encode()
                     + b"a" * (1024 * 1024 - 10) + b"\r\n" for i in range(3))
    body = parts + f"--{boundary}--\r\n".encode()
    r = await client.post("/api/v1/documents", content=body,
                          headers={**world.auth("xa1"), "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert "together" in _problem(r, 422)
    outbox = await client.get("/api/v1/outbox", headers=world.auth("xa1"))
    assert outbox.json()["items"] == []


async def _commune_admin(client, world) -> dict[str, str]:
    r = await client.post("/api/v1/users", headers=world.auth("admin"),
                          json={"unit": "000.00.02.H99", "username": "admin.xa2", "full_name": "Quản trị xã",
                                "roles": ["admin"]})
    assert r.status_code == 201, r.text
    t = await client.post(f"/api/v1/users/{r.json()['id']}/tokens", headers=world.auth("admin"), json={})
    assert t.status_code == 201, t.text
    return {"Authorization": f"Bearer {t.json()['token']}"}


async def test_a_commune_admin_cannot_stop_the_province_sealing(client, world) -> None:
    # A sealed namesake anywhere stops a unit's seal: a commune admin giving a branch the
    # province's name and a seal would stop the province's, so the rename (or the import) is refused.
    commune_admin = await _commune_admin(client, world)
    r = await client.patch("/api/v1/units/000.01.02.H99", headers=commune_admin,
                           json={"name": "Tỉnh ủy Hà Sơn", "has_seal": True})
    assert "already named" in _problem(r, 409)
    tree = [{"code": "000.01.02.H99", "name": "Tỉnh ủy Hà Sơn", "level": "Chi bộ", "parent_code": "000.00.02.H99",
             "has_seal": True}]
    r = await client.post("/api/v1/units/import", headers={**commune_admin, "Content-Type": "application/json"},
                          content=json.dumps(tree, ensure_ascii=False).encode())
    assert "already named" in _problem(r, 409)
    # Two new sealed units of one name in one file: the same.
    twins = [{"code": f"000.0{n}.02.H99", "name": "Chi bộ Sinh đôi", "level": "Chi bộ", "parent_code": "000.00.02.H99",
              "has_seal": True} for n in (8, 9)]
    r = await client.post("/api/v1/units/import", headers={**commune_admin, "Content-Type": "application/json"},
                          content=json.dumps(twins, ensure_ascii=False).encode())
    assert "already named" in _problem(r, 409)
    branch = await client.get("/api/v1/units/000.01.02.H99", headers=commune_admin)
    assert (branch.json()["name"], branch.json()["has_seal"]) == ("Chi bộ khu phố 1", False), "nothing was changed"
    missing = await client.get("/api/v1/units/000.08.02.H99", headers=commune_admin)
    assert missing.status_code == 404, "nothing of the refused file was kept"
    # A seal or a name of its own is still the commune admin's to give.
    r = await client.patch("/api/v1/units/000.01.02.H99", headers=commune_admin,
                           json={"name": "Chi bộ khu phố 1 Hồng Hà", "has_seal": True})
    assert r.status_code == 200, r.text
    # And the province still seals.
    doc = await client.post("/api/v1/documents", headers=world.auth("tu"),
                            **upload_form(metadata("91-KH/TU"), attachments=[("phu-luc.pdf", make_pdf("Phu luc"))]))
    assert doc.status_code == 201, doc.text
    att = doc.json()["attachments"][0]["id"]
    r = await client.post(f"/api/v1/documents/{doc.json()['id']}/attachments/{att}/signature",
                          headers=world.auth("tu"))
    assert r.status_code == 201, r.text


def test_the_openapi_document_describes_the_errors_as_they_are_sent(app) -> None:
    # Every error is application/problem+json: a client generated from the document reads them.
    spec = app.openapi()
    assert "HTTPValidationError" not in json.dumps(spec)
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            errors = {code: r for code, r in op["responses"].items() if code[0] in "45"}
            assert {"422", "4XX"} <= set(errors), (method, path)
            assert all(set(r["content"]) == {"application/problem+json"} for r in errors.values()), (method, path)
            if path.startswith("/api/v1/") and not path.startswith("/api/v1/pki/"):
                assert "401" in errors, (method, path)
                assert op["security"] == [{"bearer": []}], (method, path)
    report = spec["paths"]["/api/v1/documents/{doc_id}/verification"]["get"]["responses"]["200"]["content"]
    assert {"application/json", "text/html"} <= set(report)
    assert "text/csv" in spec["paths"]["/api/v1/units/export"]["get"]["responses"]["200"]["content"]


async def test_a_validation_error_is_the_problem_the_document_describes(client, world) -> None:
    r = await client.get("/api/v1/inbox?limit=0", headers=world.auth("xa1"))
    assert "limit" in _problem(r, 422)
    assert {"type", "title", "status", "detail", "errors"} <= set(r.json())


async def test_a_stored_image_answers_204_without_a_content_type(client, world) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (40, 40), (200, 0, 0, 0)).save(buf, "PNG")
    r = await client.put("/api/v1/units/me/seal-image", headers={**world.auth("xa1"), "Content-Type": "image/png"},
                         content=buf.getvalue())
    assert r.status_code == 204, r.text
    assert "content-type" not in r.headers
    assert r.content == b""
