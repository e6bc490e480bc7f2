"""Bad input gets a clear problem+json, never a 500, and leaves nothing behind."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from tests.factories.pdf import make_pdf, metadata, upload_form


def _stored_files(settings) -> list[Path]:
    """Files of documents (the store's own LAYOUT note is not one)."""
    root = settings.blob_dir
    return [p for p in root.rglob("*") if p.is_file() and p.name != ".ready" and p != root / "LAYOUT"] \
        if root.exists() else []


async def _assert_nothing_stored(client, world, settings) -> None:
    out = await client.get("/api/v1/outbox", headers=world.auth("xa1"))
    assert out.json()["items"] == [], "a refused upload must not register a document"
    assert _stored_files(settings) == [], "a refused upload must leave no file behind"


def _problem(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status
    assert body["detail"]
    assert body["type"].startswith("https://")
    return body


PDF = make_pdf()
CASES = {
    "not a pdf": (b"<html>hello</html>" * 10, 422, "not a PDF"),
    "truncated pdf": (PDF[: len(PDF) // 2], 422, "truncated"),
    "empty file": (b"", 422, "empty"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_broken_files_are_refused(client, world, settings, case) -> None:
    data, status, words = CASES[case]
    r = await client.post("/api/v1/documents", headers=world.auth("xa1"), **upload_form(metadata(), pdf=data))
    assert words in _problem(r, status)["detail"]
    await _assert_nothing_stored(client, world, settings)


async def test_over_the_limit_is_refused_while_streaming(client, world, settings) -> None:
    big = make_pdf(padding=settings.max_upload_bytes + 10)
    r = await client.post("/api/v1/documents", headers=world.auth("xa1"), **upload_form(metadata(), pdf=big))
    assert "limit" in _problem(r, 413)["detail"]
    await _assert_nothing_stored(client, world, settings)
    assert list((settings.blob_dir / "tmp").iterdir()) == []


@pytest.mark.parametrize("mark", ["Mật", "TỐI MẬT", "tuyet mat", unicodedata.normalize("NFD", "Tuyệt mật")])
async def test_classified_documents_are_refused_and_never_stored(client, world, settings, mark) -> None:
    r = await client.post("/api/v1/documents", headers=world.auth("xa1"),
                          **upload_form(metadata(secrecy=mark)))
    body = _problem(r, 422)
    assert body["type"].endswith("classified-document")
    assert "nothing was stored" in body["detail"]
    await _assert_nothing_stored(client, world, settings)


async def test_duplicate_number_points_to_the_first(client, world, settings) -> None:
    first = await client.post("/api/v1/documents", headers=world.auth("xa1"), **upload_form(metadata("05-KH/ĐU")))
    assert first.status_code == 201
    # Same number written with a leading zero dropped and the notation in NFD.
    again = upload_form(metadata(unicodedata.normalize("NFD", "5-KH/ĐU"), subject="Khác"),
                        pdf=make_pdf("other content"))
    r = await client.post("/api/v1/documents", headers=world.auth("xa1"), **again)
    body = _problem(r, 409)
    assert body["existing_document_id"] == first.json()["id"]
    assert len(_stored_files(settings)) == 1, "the refused duplicate's bytes must not be kept"


async def test_a_notation_that_upper_case_lengthens_is_still_checked_for_duplicates(client, world, settings) -> None:
    # 49 × ß is 98 × SS in upper case: the key outgrows its column.
    notation = f"1-{'ß' * 49}/{'ß' * 49}"
    first = await client.post("/api/v1/documents", headers=world.auth("xa1"), **upload_form(metadata(notation)))
    assert first.status_code == 201, first.text
    again = await client.post("/api/v1/documents", headers=world.auth("xa1"),
                              **upload_form(metadata("0" + notation), pdf=make_pdf("other content")))
    assert _problem(again, 409)["existing_document_id"] == first.json()["id"]
    assert len(_stored_files(settings)) == 1


async def test_the_same_number_uploaded_twice_at_once_is_registered_once(client, world, settings) -> None:
    import asyncio

    forms = [upload_form(metadata("07-KH/ĐU", subject=f"Bản {n}"), pdf=make_pdf(f"content {n}")) for n in (1, 2)]
    answers = await asyncio.gather(*(client.post("/api/v1/documents", headers=world.auth("xa1"), **form)
                                     for form in forms))
    assert sorted(r.status_code for r in answers) == [201, 409], [r.text for r in answers]
    [won] = [r for r in answers if r.status_code == 201]
    [lost] = [r for r in answers if r.status_code == 409]
    assert _problem(lost, 409)["existing_document_id"] == won.json()["id"]
    out = await client.get("/api/v1/outbox", headers=world.auth("xa1"))
    assert [d["id"] for d in out.json()["items"]] == [won.json()["id"]]
    assert len(_stored_files(settings)) == 1, "the refused upload's bytes must not be kept"


@pytest.mark.parametrize(("field", "value"), [("issued_on", "20/13/2026"), ("issued_on", "2026-02-30"),
                                              ("deadline", "tomorrow"), ("urgency", "rất gấp"),
                                              ("number_notation", "kế hoạch số năm")])
async def test_malformed_metadata_names_the_field(client, world, settings, field, value) -> None:
    r = await client.post("/api/v1/documents", headers=world.auth("xa1"), **upload_form(metadata(**{field: value})))
    body = _problem(r, 422)
    assert field in body["detail"] or body.get("field") == field
    await _assert_nothing_stored(client, world, settings)


@pytest.mark.parametrize(("field", "value", "says"), [
    ("issued_on", "2062-11-20", "cannot be the date of issue"),  # 2026 typed backwards
    ("issued_on", "1925-11-20", "cannot be the date of issue"),
    ("deadline", "2026-11-02", "is before the date of issue 2026-11-20"),
    ("deadline", "2062-11-30", "more than ten years after the date of issue"),
    ("issued_on", "20261120", "did you mean 2026-11-20?"),
    ("issued_on", 1763856000, "write the date as YYYY-MM-DD"),
])
async def test_dates_no_document_can_have_are_refused_in_words(client, world, settings, field, value, says) -> None:
    r = await client.post("/api/v1/documents", headers=world.auth("xa1"), **upload_form(metadata(**{field: value})))
    body = _problem(r, 422)
    assert field in body["detail"]
    assert says in body["detail"], body["detail"]
    await _assert_nothing_stored(client, world, settings)


@pytest.mark.parametrize("field", ["subject", "doc_type"])
@pytest.mark.parametrize("value", ["   ", "\u200b", " \u200b\ufeff "])
async def test_a_required_text_of_only_spaces_or_invisible_characters_is_refused(client, world, settings, field,
                                                                                 value) -> None:
    r = await client.post("/api/v1/documents", headers=world.auth("xa1"), **upload_form(metadata(**{field: value})))
    body = _problem(r, 422)
    assert field in body["detail"]
    assert "blank" in body["detail"]
    await _assert_nothing_stored(client, world, settings)


async def test_a_direction_override_cannot_disguise_a_subject_or_a_file_name(client, world, settings) -> None:
    # U+202E shows "hop-dong\u202efdp.exe" as "hop-dongexe.pdf".
    r = await client.post("/api/v1/documents", headers=world.auth("xa1"),
                          **upload_form(metadata(subject="Kế hoạch \u202eníam gnôc"), pdf=make_pdf()))
    assert "U+202E" in _problem(r, 422)["detail"]
    r = await client.post("/api/v1/documents", headers=world.auth("xa1"),
                          **upload_form(metadata(), filename="hop-dong\u202efdp.exe"))
    assert "U+202E" in _problem(r, 422)["detail"]
    await _assert_nothing_stored(client, world, settings)


async def test_a_pdf_sent_as_text_instead_of_a_file_is_told_how_to_send_it(client, world, settings) -> None:
    form = upload_form(metadata())
    form["files"] = [("file", (None, b"%PDF-1.7 as text", None))]
    r = await client.post("/api/v1/documents", headers=world.auth("xa1"), **form)
    assert "-F file=@" in _problem(r, 422)["detail"]
    await _assert_nothing_stored(client, world, settings)


async def test_metadata_that_is_not_json_or_missing(client, world, settings) -> None:
    form = upload_form(metadata())
    form["data"] = {"metadata": "{not json"}
    r = await client.post("/api/v1/documents", headers=world.auth("xa1"), **form)
    _problem(r, 422)
    r = await client.post("/api/v1/documents", headers=world.auth("xa1"),
                          files=[("file", ("a.pdf", PDF, "application/pdf"))])
    assert "metadata" in _problem(r, 422)["detail"]
    r = await client.post("/api/v1/documents", headers=world.auth("xa1"), json=metadata())
    _problem(r, 415)
    await _assert_nothing_stored(client, world, settings)


async def test_unknown_recipient_units_are_listed(client, world) -> None:
    up = await client.post("/api/v1/documents", headers=world.auth("xa1"), **upload_form(metadata()))
    r = await client.post(f"/api/v1/documents/{up.json()['id']}/send", headers=world.auth("xa1"),
                          json={"recipients": ["000.01.01.H99", "999.99.99.Z99", {"under": "NOPE"}]})
    body = _problem(r, 422)
    assert body["unknown"] == ["999.99.99.Z99", "NOPE"]
    deliveries = await client.get(f"/api/v1/documents/{up.json()['id']}/deliveries", headers=world.auth("xa1"))
    assert deliveries.json()["items"] == [], "a refused send creates no delivery"


async def test_routing_refusal_names_the_rule(client, world) -> None:
    # The branch knows its own unit, and no rule lets a unit send to itself.
    up = await client.post("/api/v1/documents", headers=world.auth("cb_dong"), **upload_form(metadata("3-CV/CB")))
    r = await client.post(f"/api/v1/documents/{up.json()['id']}/send", headers=world.auth("cb_dong"),
                          json={"recipients": ["000.01.01.H99"]})
    body = _problem(r, 403)
    assert body["rules"] == ["parent", "children", "siblings", "descendants"]
    assert body["refused"] == ["000.01.01.H99"]
    assert "parent" in body["detail"]


async def test_a_unit_the_sender_may_not_know_of_is_answered_as_unknown_with_the_rule(client, world) -> None:
    # The province exists, but it is not the branch's parent and not in its part of the tree:
    # the answer is the one for a code that names nothing, and it says why either happens.
    up = await client.post("/api/v1/documents", headers=world.auth("cb_dong"), **upload_form(metadata("4-CV/CB")))
    url = f"/api/v1/documents/{up.json()['id']}/send"
    hidden = _problem(await client.post(url, headers=world.auth("cb_dong"), json={"recipients": ["000.00.00.H99"]}),
                      422)
    missing = _problem(await client.post(url, headers=world.auth("cb_dong"), json={"recipients": ["999.99.99.H99"]}),
                       422)
    assert hidden["detail"].replace("000.00.00.H99", "X") == missing["detail"].replace("999.99.99.H99", "X")
    assert "siblings" in hidden["detail"]
    assert "Tỉnh ủy" not in hidden["detail"]


async def test_nfd_names_are_the_same_names(client, world) -> None:
    nfd = unicodedata.normalize("NFD", "Kế hoạch tổ chức Đại hội")
    up = await client.post("/api/v1/documents", headers=world.auth("xa1"),
                           **upload_form(metadata("40-KH/ĐU", subject=nfd)))
    assert up.status_code == 201
    assert up.json()["subject"] == unicodedata.normalize("NFC", nfd)
    found = await client.get("/api/v1/outbox", headers=world.auth("xa1"),
                             params={"q": unicodedata.normalize("NFD", "đại hội")})
    assert [d["number_notation"] for d in found.json()["items"]] == ["40-KH/ĐU"]
    bad_level = await client.post("/api/v1/documents", headers=world.auth("xa1"),
                                  **upload_form(metadata("41-KH/ĐU", urgency=unicodedata.normalize("NFD", "Khẩn"))))
    assert bad_level.json()["urgency"] == 1


async def test_garbage_bodies_never_cause_a_server_error(client, world) -> None:
    for method, path, kwargs in [
        ("POST", "/api/v1/documents", {"content": b"\x00\xff" * 100,
                                       "headers": {"content-type": "multipart/form-data; boundary=x"}}),
        ("POST", "/api/v1/documents/abc/send", {"content": b"{", "headers": {"content-type": "application/json"}}),
        ("GET", "/api/v1/inbox", {"params": {"cursor": "!!!notacursor"}}),
        ("GET", "/api/v1/inbox", {"params": {"since": "yesterday"}}),
        ("POST", "/api/v1/units/import", {"content": json.dumps([{"code": "bad code"}]).encode()}),
    ]:
        headers = {**world.auth("admin"), **kwargs.pop("headers", {})}
        r = await client.request(method, path, headers=headers, **kwargs)
        assert 400 <= r.status_code < 500, f"{method} {path}: {r.status_code} {r.text}"
        assert r.headers["content-type"].startswith("application/problem+json")
