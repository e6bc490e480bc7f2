"""Hostile and malformed requests to the upload, image, signing and PKI endpoints: each
gets a problem+json a clerk can act on (or, for the TSA, a protocol rejection), never a
500, and nothing of a refused request is kept."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

from asn1crypto import cms, core, tsp
from PIL import Image

from tests.factories.pdf import make_pdf, metadata, upload_form

BOUNDARY = "hostile-test-boundary"


def _problem(r, status: int) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == status
    return str(r.json()["detail"])


def _blob_files(settings) -> list[Path]:
    """Every file the store holds, finished or temporary (its LAYOUT note aside)."""
    root = settings.blob_dir
    return [p for p in root.rglob("*") if p.is_file() and p.name != "LAYOUT"] if root.exists() else []


def _part(name: str, data: bytes, filename: str | None = None, ctype: bytes | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n".encode()
    if ctype is not None:
        head += b"Content-Type: " + ctype + b"\r\n"
    return head + b"\r\n" + data + b"\r\n"


def _form(*parts: bytes, closed: bool = True) -> bytes:
    return b"".join(parts) + (f"--{BOUNDARY}--\r\n".encode() if closed else b"")


def _post_form(client, world, body: bytes, boundary: str = BOUNDARY, who: str = "xa1"):
    headers = {**world.auth(who), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    return client.post("/api/v1/documents", headers=headers, content=body)


def _meta_part() -> bytes:
    return _part("metadata", json.dumps(metadata(), ensure_ascii=False).encode())


async def _outbox(client, world) -> list:
    return (await client.get("/api/v1/outbox", headers=world.auth("xa1"))).json()["items"]


async def test_an_upload_cut_short_is_refused_even_when_its_file_looks_whole(client, world, settings) -> None:
    # The PDF part is complete (it ends in %%EOF), the attachment is cut halfway, and the
    # form's closing delimiter never comes: what arrived is not what the clerk sent.
    attachment = make_pdf("phu luc", padding=2000)
    body = _form(_meta_part(), _part("file", make_pdf(), "kehoach.pdf", b"application/pdf"),
                 _part("attachments", attachment, "phuluc.pdf", b"application/pdf"), closed=False)
    r = await _post_form(client, world, body[: len(body) - len(attachment) // 2])
    assert "cut short" in _problem(r, 422)
    assert await _outbox(client, world) == []
    assert _blob_files(settings) == []


async def test_a_boundary_longer_than_the_standard_allows_is_refused(client, world, settings) -> None:
    r = await _post_form(client, world, _form(_meta_part()), boundary="B" * 5000)
    assert "boundary" in _problem(r, 415)
    assert _blob_files(settings) == []


async def test_an_attachment_type_that_is_not_a_media_type_is_refused(client, world, settings) -> None:
    for bad in (b"text/\x00html", b"t\xe9xt/h\x7ftml", b"nonsense"):
        body = _form(_meta_part(), _part("file", make_pdf(), "kehoach.pdf", b"application/pdf"),
                     _part("attachments", b"hello", "note.txt", bad))
        assert "Content-Type" in _problem(await _post_form(client, world, body), 422)
    assert await _outbox(client, world) == []
    assert _blob_files(settings) == []


async def test_an_attachment_keeps_a_plain_media_type_and_is_served_with_it(client, world) -> None:
    body = _form(_meta_part(), _part("file", make_pdf(), "kehoach.pdf", b"application/pdf"),
                 _part("attachments", b"hello", "", b"Text/Plain; charset=utf-8"))
    r = await _post_form(client, world, body)
    assert r.status_code == 201, r.text
    att = r.json()["attachments"][0]
    assert att["filename"] == "attachment-1", "a part without a file name gets a neutral one, not 'document.pdf'"
    got = await client.get(f"/api/v1/documents/{r.json()['id']}/attachments/{att['id']}", headers=world.auth("xa1"))
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("text/plain")
    assert got.content == b"hello"


async def test_a_form_field_sent_twice_is_refused_not_silently_replaced(client, world, settings) -> None:
    other = _part("metadata", json.dumps(metadata("99-KH/ĐU"), ensure_ascii=False).encode())
    body = _form(_meta_part(), other, _part("file", make_pdf(), "kehoach.pdf", b"application/pdf"))
    assert "appears twice" in _problem(await _post_form(client, world, body), 422)
    assert await _outbox(client, world) == []
    assert _blob_files(settings) == []


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` × ``height`` pixels and holds almost none."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (300, 120), (0, 0, 200, 0)).save(buf, "PNG")
    return buf.getvalue()


async def test_an_image_declaring_huge_dimensions_is_refused(client, world, settings) -> None:
    r = await client.put("/api/v1/me/signature-image", headers=world.auth("xa1_signer"),
                         content=_png_header_only(20000, 20000))
    assert "2000×2000 pixels" in _problem(r, 422)
    assert _blob_files(settings) == []


async def test_an_image_from_someone_not_allowed_to_set_it_is_not_kept(client, world, settings) -> None:
    # A clerk is no signer; a branch holds no seal. The PNG itself is fine.
    assert (await client.put("/api/v1/me/signature-image", headers=world.auth("xa1"), content=_png())).status_code \
        == 403
    r = await client.put("/api/v1/units/me/seal-image", headers=world.auth("cb_dong"), content=_png())
    assert r.status_code == 403
    assert _blob_files(settings) == [], "a refused image must leave no file behind"
    ok = await client.put("/api/v1/me/signature-image", headers=world.auth("xa1_signer"), content=_png())
    assert ok.status_code == 204
    assert len(_blob_files(settings)) == 1


async def test_verifying_a_form_with_extra_files_keeps_none_of_them(client, world, settings) -> None:
    files = [("file", ("a.pdf", make_pdf(), "application/pdf")), ("extra", ("b.pdf", make_pdf("b"), "application/pdf"))]
    r = await client.post("/api/v1/verify", headers=world.auth("xa1"), files=files)
    assert r.status_code == 200, r.text
    assert _blob_files(settings) == [], "verifying stores nothing"
    r = await client.post("/api/v1/verify", headers=world.auth("xa1"),
                          files=[("other", ("b.pdf", make_pdf("b"), "application/pdf"))])
    assert "'file'" in _problem(r, 422)
    assert _blob_files(settings) == []


async def test_signature_requests_with_impossible_fields_are_refused(client, world) -> None:
    up = await client.post("/api/v1/documents", headers=world.auth("xa1"), **upload_form(metadata()))
    doc = up.json()["id"]
    url = f"/api/v1/documents/{doc}/signatures/personal"
    for body, words in (({"field_name": "\u0000"}, "control characters"), ({"field_name": "a.b"}, "'.'"),
                        ({"box": [0, 0, 0, 0]}, "greater than"), ({"box": [10, 10, 5, 50]}, "greater than"),
                        ({"box": [0, 0, 1e300, 50]}, "less than or equal")):
        r = await client.post(url, headers=world.auth("xa1_signer"), json=body)
        assert words in _problem(r, 422), body
    history = await client.get(f"/api/v1/documents/{doc}/signatures", headers=world.auth("xa1"))
    assert history.json()["signatures"] == [], "a refused request signs nothing"


class _Reply(core.Sequence):
    """RFC 3161 TimeStampResp, with the token optional as the RFC has it."""

    _fields = [("status", tsp.PKIStatusInfo), ("time_stamp_token", cms.ContentInfo, {"optional": True})]


async def test_the_timestamp_authority_rejects_garbage_by_the_protocol(client) -> None:
    for body in (b"", b"not a request", json.dumps({"a": 1}).encode(), b"\x30\x03\x02\x01\x01"):
        r = await client.post("/api/v1/pki/tsa", content=body, headers={"Content-Type": "application/timestamp-query"})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/timestamp-reply"
        reply = _Reply.load(r.content)
        assert reply["status"]["status"].native == "rejection"
        assert reply["status"]["fail_info"].native == {"bad_data_format"}


async def test_text_with_a_control_character_is_refused_on_every_database(client, world, settings) -> None:
    r = await client.post("/api/v1/documents", headers=world.auth("xa1"),
                          **upload_form(metadata(subject="Kế hoạch\x00 năm 2027")))
    assert "U+0000" in _problem(r, 422)
    assert await _outbox(client, world) == []
    assert _blob_files(settings) == []
    r = await client.post("/api/v1/users", headers=world.auth("admin"),
                          json={"username": "van\x1bthu", "full_name": "Văn thư", "roles": ["clerk"]})
    assert "U+001B" in _problem(r, 422)
    up = await client.post("/api/v1/documents", headers=world.auth("xa1"), **upload_form(metadata("77-KH/ĐU")))
    doc = up.json()["id"]
    assert (await client.post(f"/api/v1/documents/{doc}/send", headers=world.auth("xa1"),
                              json={"recipients": ["000.01.01.H99"]})).status_code == 200
    r = await client.post(f"/api/v1/documents/{doc}/recall", headers=world.auth("xa1"), json={"reason": "sai\x00sót"})
    assert "U+0000" in _problem(r, 422)
    # Lines and tabs are text, not control.
    ok = await client.post(f"/api/v1/documents/{doc}/recall", headers=world.auth("xa1"),
                           json={"reason": "Ban hành nhầm số.\n\tĐề nghị trả lại."})
    assert ok.status_code == 200, ok.text


async def test_an_id_with_a_nul_in_the_path_is_a_problem_not_a_crash(client, world) -> None:
    r = await client.get("/api/v1/documents/abc%00def", headers=world.auth("xa1"))
    assert r.status_code in (404, 422), r.text
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_an_image_cut_short_is_refused_when_uploaded_not_when_signing(client, world, settings) -> None:
    png = _png()
    r = await client.put("/api/v1/me/signature-image", headers=world.auth("xa1_signer"), content=png[: len(png) - 40])
    assert "damaged" in _problem(r, 422)
    assert _blob_files(settings) == []


async def test_signature_boxes_too_small_to_show_anything_and_blank_field_names_are_refused(client, world) -> None:
    up = await client.post("/api/v1/documents", headers=world.auth("xa1"), **upload_form(metadata("81-KH/ĐU")))
    url = f"/api/v1/documents/{up.json()['id']}/signatures/personal"
    for body in ({"box": [0, 0, 0.001, 0.001]}, {"box": [100, 100, 105, 300]}, {"field_name": " "},
                 {"field_name": "\u200b"}):
        r = await client.post(url, headers=world.auth("xa1_signer"), json=body)
        _problem(r, 422)
    signatures = await client.get(f"/api/v1/documents/{up.json()['id']}/signatures", headers=world.auth("xa1"))
    assert signatures.json()["signatures"] == []


async def test_half_a_surrogate_pair_is_a_problem_wherever_it_is_sent(client, world) -> None:
    admin = {**world.auth("admin"), "Content-Type": "application/json"}
    requests = [
        ("POST", "/api/v1/units/import",
         b'[{"code": "000.09.01.H99", "name": "A\\ud800", "level": "Chi b\\u1ed9", "parent_code": "000.00.01.H99"}]'),
        ("POST", "/api/v1/users", b'{"username": "x.y", "full_name": "X", "roles": ["clerk"], "unit": "a\\ud800b"}'),
        ("PATCH", "/api/v1/units/000.01.01.H99", b'{"parent": "a\\ud800b"}'),
    ]
    for method, url, body in requests:
        r = await client.request(method, url, headers=admin, content=body)
        assert r.status_code == 422, (url, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    unit = await client.get("/api/v1/units/000.01.01.H99", headers=world.auth("admin"))
    assert unit.json()["name"] == "Chi bộ thôn Đông", "nothing was changed"


async def test_unit_files_with_control_characters_or_no_header_are_refused(client, world) -> None:
    admin = world.auth("admin")
    bad = [
        ("application/json", '[{"code": "000.09.01.H99", "name": "Chi bộ\\u001b[31mX", "level": "Chi bộ", '
                             '"parent_code": "000.00.01.H99"}]', "U+001B"),
        ("application/json", '[{"code": "000.09.01.H99", "name": "Chi bộ X", "level": "Chi bộ", '
                             '"parent_code": "000.00.01.H99", "mailboxes": ["a\\u0000b@c.vn"]}]', "U+0000"),
        ("text/csv", "\ufeff", "first line must name its columns"),
        ("text/csv", "ma,ten\n000.09.01.H99,Chi bộ X\n", "first line must name its columns"),
    ]
    for ctype, body, words in bad:
        r = await client.post("/api/v1/units/import", headers={**admin, "Content-Type": ctype},
                              content=body.encode())
        assert words in _problem(r, 422), body
    assert (await client.get("/api/v1/units/000.09.01.H99", headers=admin)).status_code == 404


async def test_file_names_with_control_characters_are_refused(client, world, settings) -> None:
    for name, field in (("a\x00.pdf", "file"), ("a\x1b[31mb.txt", "attachments")):
        main_name = name if field == "file" else "kehoach.pdf"
        parts = [_meta_part(), _part("file", make_pdf(), main_name, b"application/pdf")]
        if field == "attachments":
            parts.append(_part("attachments", b"hello", name, b"text/plain"))
        assert "control character" in _problem(await _post_form(client, world, _form(*parts)), 422)
    assert await _outbox(client, world) == []
    assert _blob_files(settings) == []


async def test_verifying_an_empty_body_or_a_file_that_is_no_pdf_is_refused(client, world, settings) -> None:
    for body, words in ((b"", "empty"), (b"<html>hello</html>", "not a PDF")):
        r = await client.post("/api/v1/verify", headers={**world.auth("xa1"), "Content-Type": "application/pdf"},
                              content=body)
        assert words in _problem(r, 422)
    assert _blob_files(settings) == []


async def test_reading_a_subtree_as_auditor_gives_no_hand_in_its_mail(app, client, world) -> None:
    from service import auth, units

    async with app.state.db.session() as s:
        xa1, province = await units.get_unit(s, "000.00.01.H99"), await units.get_unit(s, "000.00.00.H99")
        user = await auth.create_user(s, unit=xa1, username="vanthu.kiemtra", full_name="Văn thư kiêm kiểm tra",
                                      roles=["clerk", "auditor"], audit_root=province)
        both = {"Authorization": f"Bearer {(await auth.issue_token(s, user, days=1)).token}"}
        await s.commit()
    up = await client.post("/api/v1/documents", headers=world.auth("tu"), **upload_form(metadata("31-CV/TU")))
    await client.post(f"/api/v1/documents/{up.json()['id']}/send", headers=world.auth("tu"),
                      json={"recipients": ["000.00.02.H99"]})
    theirs = (await client.get("/api/v1/notifications", headers=world.auth("xa2"))).json()["notifications"][0]["id"]
    assert (await client.get(f"/api/v1/notifications/{theirs}", headers=both)).status_code == 200, "reading is auditing"
    for action in ("cancel", "retry"):
        r = await client.post(f"/api/v1/notifications/{theirs}/{action}", headers=both)
        assert r.status_code == 404, r.text
    assert (await client.get(f"/api/v1/notifications/{theirs}", headers=world.auth("xa2"))).json()["state"] != \
        "cancelled"
    assert (await client.post(f"/api/v1/notifications/{theirs}/cancel", headers=world.auth("xa2"))).status_code == 200


async def test_a_trailing_slash_is_not_found_and_redirects_nowhere(client, world) -> None:
    r = await client.get("/api/v1/me/", headers={**world.auth("tu"), "Host": "evil.example"})
    assert r.status_code == 404
    assert "location" not in r.headers
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_a_json_body_over_the_limit_is_refused_before_it_is_parsed(client, world) -> None:
    big = b'{"recipients": [' + b'"000.00.01.H99",' * 300_000 + b'"x"]}'
    for who in (world.auth("tu"), {}):
        r = await client.post("/api/v1/documents/x/send", headers={**who, "Content-Type": "application/json"},
                              content=big)
        assert "larger than 4 MB" in _problem(r, 413)

    async def chunks():
        for at in range(0, len(big), 65536):
            yield big[at:at + 65536]
    r = await client.post("/api/v1/documents/x/send", headers={**world.auth("tu"), "Content-Type": "application/json"},
                          content=chunks())
    assert "larger than 4 MB" in _problem(r, 413), "a body with no declared length is cut off at the limit too"


async def test_people_need_names_an_address_and_a_true_or_false(client, world) -> None:
    for body, words in (({"username": "   ", "full_name": "X", "roles": ["clerk"]}, "blank"),
                        ({"username": "a.b", "full_name": "  ", "roles": ["clerk"]}, "blank"),
                        ({"username": "a.b", "full_name": "X", "roles": ["clerk"], "email": "not an email"},
                         "not an e-mail address"),
                        ({"username": "a.b", "full_name": "X", "roles": ["clerk"], "is_service": "yes"}, "boolean")):
        r = await client.post("/api/v1/users", headers=world.auth("admin"), json=body)
        assert words in _problem(r, 422), body


async def test_texts_longer_than_their_fields_once_normalised_are_refused_alike_on_both_databases(
        client, world, settings) -> None:
    # Each passed the request's checks and then did not fit its column: PostgreSQL answered
    # 500, SQLite kept it. Now both refuse it with what to shorten, and keep nothing.
    long_name = _post_form(client, world, _form(_meta_part(), _part("file", make_pdf(), "a" * 300 + ".pdf",
                                                                     b"application/pdf")))
    assert "at most 255 characters" in _problem(await long_name, 422)
    long_type = _post_form(client, world, _form(_meta_part(), _part("file", make_pdf(), "kh.pdf", b"application/pdf"),
                                                _part("attachments", b"x", "a.txt", b"text/" + b"x" * 120)))
    assert "at most 100 characters" in _problem(await long_type, 422)
    long_issuer = await client.post("/api/v1/documents", headers=world.auth("xa1"),
                                    **upload_form(metadata("12-CV/" + "Đ" * 140)))
    assert "at most 100 characters" in _problem(long_issuer, 422)
    # U+0958 is one character typed and two once normalised (NFC): 1,500 of them are 3,000.
    grows = await client.post("/api/v1/documents", headers=world.auth("xa1"),
                              **upload_form({**metadata("13-CV/ĐU"), "subject": "\u0958" * 1500}))
    assert "subject" in _problem(grows, 422)
    assert _blob_files(settings) == []
    assert await _outbox(client, world) == []
    # Case folding doubles ß; the subject fits its field, and the document is kept.
    kept = await client.post("/api/v1/documents", headers=world.auth("xa1"),
                             **upload_form({**metadata("14-CV/ĐU"), "subject": "ß" * 1300}))
    assert kept.status_code == 201, kept.text
