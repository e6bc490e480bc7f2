"""What a signature request may ask for, and what it leaves behind when refused: the seal
only over a personal signature made here, no signature on an encrypted or locked file,
boxes on the page, field names a person could read; parallel reports and evidence exports
of one document recorded once and never colliding."""

from __future__ import annotations

import asyncio
import base64
import io
import uuid
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import copy_into_new_writer
from pyhanko.sign import fields
from sqlalchemy import func, select
from sqlmodel import col

from service.audit.models import AuditEntry
from service.documents.models import VerificationRecord
from service.settings import Settings
from service.signing import DevelopmentPki
from tests.conftest import TEST_PASSPHRASE, World
from tests.factories.pdf import make_pdf, metadata, upload_form

Client = httpx.AsyncClient
BOX = [330, 120, 500, 200]
PARALLEL = 8
TOKEN_TITLE = "The signature from the token was not accepted"


# -- helpers ------------------------------------------------------------------------------
def _with_empty_field(pdf: bytes, name: str = "Empty1",
                      box: tuple[float, float, float, float] = (330, 120, 500, 200)) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    fields.append_signature_field(writer, fields.SigFieldSpec(name, box=box, on_page=0))  # type: ignore[arg-type]
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _encrypted(pdf: bytes, user_password: str) -> bytes:
    writer = copy_into_new_writer(PdfFileReader(io.BytesIO(pdf)))
    writer.encrypt("owner", user_password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _chain(dev_keys: Path) -> list[str]:
    """A signer's token certificate chain (base64 DER); the key stays out of the service."""
    pki = DevelopmentPki.open(dev_keys, TEST_PASSPHRASE.encode())
    issued = pki.issue_personal_cert(f"token-{uuid.uuid4().hex[:12]}", "Người xa1_signer", "token@example.vn")
    issued.key_path.unlink()
    certs = [x509.load_pem_x509_certificate(p.read_bytes()) for p in (issued.cert_path, *issued.chain_paths)]
    return [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in certs]


async def _upload(client: Client, world: World, pdf: bytes | None = None,
                  attachments: list[tuple[str, bytes]] | None = None) -> dict[str, Any]:
    number = f"{uuid.uuid4().int % 9000 + 1000}-CV/ĐU"
    r = await client.post("/api/v1/documents", headers=world.auth("xa1"),
                          **upload_form(metadata(number), pdf=pdf, attachments=attachments))
    assert r.status_code == 201, r.text
    doc: dict[str, Any] = r.json()
    return doc


async def _personal(client: Client, world: World, doc_id: str, **body: Any) -> httpx.Response:
    return await client.post(f"/api/v1/documents/{doc_id}/signatures/personal", headers=world.auth("xa1_signer"),
                             json=body)


async def _seal(client: Client, world: World, doc_id: str, **body: Any) -> httpx.Response:
    return await client.post(f"/api/v1/documents/{doc_id}/signatures/organisation", headers=world.auth("xa1"),
                             json=body)


def _problem(r: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert r.status_code in statuses, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    return body


def _files(settings: Any) -> set[str]:
    """Every file of the blob store, its scratch folder included."""
    return {str(p) for p in settings.blob_dir.rglob("*") if p.is_file()}


async def _signatures(client: Client, world: World, doc_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/documents/{doc_id}/signatures", headers=world.auth("xa1"))
    rows: list[dict[str, Any]] = r.json()["signatures"]
    return rows


async def _verdict(client: Client, world: World, pdf: bytes) -> str:
    r = await client.post("/api/v1/verify", headers={**world.auth("auditor"), "content-type": "application/pdf"},
                          content=pdf)
    assert r.status_code == 200, r.text
    verdict: str = r.json()["verdict"]
    return verdict


async def _signed_and_sealed(client: Client, world: World) -> tuple[dict[str, Any], bytes]:
    doc = await _upload(client, world)
    assert (await _personal(client, world, doc["id"], box=BOX)).status_code == 201
    assert (await _seal(client, world, doc["id"])).status_code == 201
    pdf = (await client.get(f"/api/v1/documents/{doc['id']}/content", headers=world.auth("xa1"))).content
    return doc, pdf


# -- 1. the seal goes over the leader's signature made here, nothing else ----------------------
async def test_seal_over_an_empty_field_or_any_but_a_personal_signature_made_here_is_refused(
        client: Client, world: World, settings: Settings,
) -> None:
    doc = await _upload(client, world, pdf=_with_empty_field(make_pdf()))
    before = _files(settings)

    refused = await _seal(client, world, doc["id"], personal_field="Empty1")

    assert "personal signature comes first" in _problem(refused, 409)["detail"]
    assert await _signatures(client, world, doc["id"]) == []
    assert _files(settings) == before
    # Once the leader has signed, the seal still only goes over that signature.
    assert (await _personal(client, world, doc["id"], box=BOX)).status_code == 201
    other = await _seal(client, world, doc["id"], personal_field="Empty1")
    assert "personal signature comes first" in _problem(other, 409)["detail"]
    assert (await _seal(client, world, doc["id"], personal_field="Sig-Personal")).status_code == 201
    assert [s["kind"] for s in await _signatures(client, world, doc["id"])] == ["personal", "organisation"]


# -- 2. encrypted PDFs ------------------------------------------------------------------------
async def test_encrypted_pdfs_are_refused_with_a_reason_a_clerk_can_act_on(
        client: Client, world: World, settings: Settings, dev_keys: Path,
) -> None:
    for user_password in ("", "user"):
        locked = _encrypted(make_pdf(), user_password)
        doc = await _upload(client, world, pdf=locked, attachments=[("phu-luc.pdf", locked)])
        before = _files(settings)

        personal = _problem(await _personal(client, world, doc["id"], box=BOX), 422)
        attachment = _problem(await client.post(
            f"/api/v1/documents/{doc['id']}/attachments/{doc['attachments'][0]['id']}/signature",
            headers=world.auth("xa1")), 422)
        prepared = _problem(await client.post(
            f"/api/v1/documents/{doc['id']}/signatures/external", headers=world.auth("xa1_signer"),
            json={"box": BOX, "certificate_chain": _chain(dev_keys)}), 422)

        for problem in (personal, attachment, prepared):
            assert "encrypted PDFs cannot be signed here" in problem["detail"], problem
            assert "unencrypted copy" in problem["detail"]
        assert prepared["title"] != TOKEN_TITLE
        assert await _signatures(client, world, doc["id"]) == []
        assert _files(settings) == before


# -- 3. parallel evidence exports ---------------------------------------------------------------
async def test_parallel_evidence_exports_of_one_document_all_succeed_and_leave_nothing(
        client: Client, world: World, settings: Settings,
) -> None:
    doc, pdf = await _signed_and_sealed(client, world)
    before = _files(settings)

    responses = await asyncio.gather(*(client.get(f"/api/v1/documents/{doc['id']}/evidence",
                                                  headers=world.auth("auditor")) for _ in range(PARALLEL)))

    assert [r.status_code for r in responses] == [200] * PARALLEL, [r.text[:300] for r in responses]
    for r in responses:
        with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
            assert zf.read(f"document/{doc['id']}.pdf") == pdf
    assert _files(settings) - before == set()  # no scratch copy, link or ZIP stays behind


# -- 4. a locked attachment ----------------------------------------------------------------------
async def test_a_sealed_attachment_is_not_signed_again(client: Client, world: World, settings: Settings) -> None:
    _, sealed = await _signed_and_sealed(client, world)
    doc = await _upload(client, world, attachments=[("da-dong-dau.pdf", sealed)])
    att = doc["attachments"][0]
    before = _files(settings)

    r = await client.post(f"/api/v1/documents/{doc['id']}/attachments/{att['id']}/signature",
                          headers=world.auth("xa1"))

    assert "forbids all changes" in _problem(r, 409, 422)["detail"]
    kept = await client.get(f"/api/v1/documents/{doc['id']}/attachments/{att['id']}", headers=world.auth("xa1"))
    assert kept.content == sealed
    assert await _verdict(client, world, kept.content) == "passed"
    assert await _signatures(client, world, doc["id"]) == []
    assert _files(settings) == before


# -- 5. parallel verification of a new version ----------------------------------------------------
async def test_parallel_verifications_of_a_new_version_record_one_report(
        app: Any, client: Client, world: World,
) -> None:
    doc = await _upload(client, world)
    signed = await _personal(client, world, doc["id"], box=BOX)
    assert signed.status_code == 201, signed.text
    sha = signed.json()["sha256_after"]

    responses = await asyncio.gather(*(client.get(f"/api/v1/documents/{doc['id']}/verification",
                                                  headers=world.auth("xa1")) for _ in range(PARALLEL)))

    assert [r.status_code for r in responses] == [200] * PARALLEL, [r.text[:300] for r in responses]
    assert {r.json()["sha256"] for r in responses} == {sha}
    async with app.state.db.session() as s:
        records = await s.scalar(select(func.count()).select_from(VerificationRecord).where(
            col(VerificationRecord.document_id) == doc["id"], col(VerificationRecord.sha256) == sha))
        audited = await s.scalar(select(func.count()).select_from(AuditEntry).where(
            col(AuditEntry.document_id) == doc["id"], col(AuditEntry.action) == "document.verified"))
    assert (records, audited) == (1, 1)


async def test_a_send_and_reports_read_at_the_same_moment_record_one_report(
        app: Any, client: Client, world: World,
) -> None:
    for _ in range(3):
        doc = await _upload(client, world)
        signed = await _personal(client, world, doc["id"], box=BOX)
        assert signed.status_code == 201, signed.text
        read = [client.get(f"/api/v1/documents/{doc['id']}/verification", headers=world.auth("xa1"))
                for _ in range(2)]
        send = client.post(f"/api/v1/documents/{doc['id']}/send", headers=world.auth("xa1"),
                           json={"recipients": ["000.01.01.H99"]})
        responses = await asyncio.gather(*read, send)
        assert [r.status_code for r in responses] == [200, 200, 200], [r.text[:300] for r in responses]
        async with app.state.db.session() as s:
            records = await s.scalar(select(func.count()).select_from(VerificationRecord).where(
                col(VerificationRecord.document_id) == doc["id"]))
        assert records == 1


# -- 6. field names a person can read --------------------------------------------------------------
async def test_field_names_with_invisible_format_characters_are_refused(
        client: Client, world: World, settings: Settings,
) -> None:
    doc = await _upload(client, world)
    before = _files(settings)
    for name in ("\u202eabc", "a\u200bb", "Sig\u2060Personal", "\ufeffSig"):
        r = await _personal(client, world, doc["id"], box=BOX, field_name=name)
        assert "invisible format characters" in _problem(r, 422)["detail"], name
        sealed = await _seal(client, world, doc["id"], personal_field=name)
        assert "invisible format characters" in _problem(sealed, 422)["detail"], name
    assert await _signatures(client, world, doc["id"]) == []
    assert _files(settings) == before


# -- 7. placement on the page, and fields that exist --------------------------------------------------
async def test_a_box_off_the_page_or_a_missing_field_is_refused(
        client: Client, world: World, settings: Settings,
) -> None:
    doc = await _upload(client, world, pdf=_with_empty_field(make_pdf(pages=2)))
    before = _files(settings)

    off = _problem(await _personal(client, world, doc["id"], box=[5000, 5000, 5100, 5100]), 422)
    assert "not inside page 0" in off["detail"], off
    assert "595 x 842 points" in off["detail"], off
    partly = _problem(await _personal(client, world, doc["id"], page=1, box=[500, 100, 700, 200]), 422)
    assert "not inside page 1" in partly["detail"], partly
    missing = _problem(await _personal(client, world, doc["id"], field_name="Sig-Nope"), 422)
    assert "no signature field 'Sig-Nope'" in missing["detail"], missing
    assert "'Empty1'" in missing["detail"], missing
    no_page = _problem(await _personal(client, world, doc["id"], page=7, box=BOX), 422)
    assert "page 7 does not exist" in no_page["detail"], no_page
    assert "2 page(s)" in no_page["detail"], no_page
    assert await _signatures(client, world, doc["id"]) == []
    assert _files(settings) == before

    # The empty field is signed where it is; a named new field needs its box.
    assert (await _personal(client, world, doc["id"], field_name="Empty1")).status_code == 201
    again = _problem(await _personal(client, world, doc["id"], field_name="Empty1"), 409, 422)
    assert "signed already" in again["detail"]
    named = await _personal(client, world, doc["id"], page=1, box=BOX, field_name="Sig-Second")
    assert named.status_code == 201, named.text
    assert [s["field_name"] for s in await _signatures(client, world, doc["id"])] == ["Empty1", "Sig-Second"]


async def test_openapi_describes_field_name_as_the_service_treats_it(client: Client) -> None:
    schema = (await client.get("/api/v1/openapi.json")).json()["components"]["schemas"]
    described = schema["PersonalSignatureRequest"]["properties"]["field_name"]["description"]
    assert "existing empty signature field" in described, described
    assert "with a box" in described, described


# -- 8. the two-step prepare's own problems --------------------------------------------------------
async def test_prepare_problems_are_the_requests_and_name_no_internal_file(
        client: Client, world: World, settings: Settings, dev_keys: Path,
) -> None:
    doc = await _upload(client, world)
    url = f"/api/v1/documents/{doc['id']}/signatures/external"
    chain = _chain(dev_keys)
    before = _files(settings)

    no_page = _problem(await client.post(url, headers=world.auth("xa1_signer"),
                                         json={"page": 3, "box": BOX, "certificate_chain": chain}), 422)
    not_der = _problem(await client.post(url, headers=world.auth("xa1_signer"),
                                         json={"box": BOX, "certificate_chain": [base64.b64encode(b"no").decode()]}),
                       422)

    assert "page 3 does not exist" in no_page["detail"], no_page
    assert "certificate_chain[0] is not a certificate" in not_der["detail"], not_der
    for problem in (no_page, not_der):
        assert problem["title"] != TOKEN_TITLE
        assert doc["sha256"][:8] not in problem["detail"]
        assert str(settings.data_dir) not in problem["detail"]
    assert _files(settings) == before


# -- a page tree that lists its nodes twice ---------------------------------------------------


def _doubling_page_tree(depth: int) -> bytes:
    """2 KB of PDF whose page tree names the same node twice at each of ``depth`` levels:
    one page reached 2**depth ways."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    for level in range(depth):
        kid = level + 3
        objects.append(f"<< /Type /Pages /Kids [{kid} 0 R {kid} 0 R] /Count 1 >>".encode())
    leaf = depth + 2
    objects.append(f"<< /Type /Page /Parent {leaf - 1} 0 R /MediaBox [0 0 595 842] /Contents {leaf + 1} 0 R >>"
                   .encode())
    objects.append(b"<< /Length 33 >>\nstream\nBT /F1 12 Tf 72 720 Td (x) Tj ET\nendstream")
    from tests.factories.pdf import assemble_pdf

    return assemble_pdf(objects)


async def test_a_page_tree_that_names_its_nodes_twice_is_refused_at_once(
        client: Client, world: World, settings: Settings, dev_keys: Path) -> None:
    # Walking every page of such a file took hours and, on the event loop, stopped every request.
    doc = await _upload(client, world, pdf=_doubling_page_tree(40))
    personal = await asyncio.wait_for(_personal(client, world, doc["id"], box=BOX), 20)
    assert "lists one of its nodes twice" in _problem(personal, 422)["detail"]
    prepared = await asyncio.wait_for(client.post(
        f"/api/v1/documents/{doc['id']}/signatures/external", headers=world.auth("xa1_signer"),
        json={"box": BOX, "certificate_chain": _chain(dev_keys)}), 20)
    assert "lists one of its nodes twice" in _problem(prepared, 422)["detail"]
    assert await _signatures(client, world, doc["id"]) == []


def _cropped(pdf: bytes, crop: tuple[float, float, float, float]) -> bytes:
    from pyhanko.pdf_utils import generic

    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    page["/CropBox"] = generic.ArrayObject([generic.FloatObject(v) for v in crop])
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize(("box", "says"), [((2000, 2000, 2170, 2080), "lies off the visible page"),
                                           ((0, 0, 0, 0), "too small to show a signature")])
async def test_an_empty_field_no_one_could_see_is_not_signed(
        client: Client, world: World, box: tuple[float, float, float, float], says: str) -> None:
    doc = await _upload(client, world, pdf=_with_empty_field(make_pdf(), "Ky", box))
    refused = _problem(await _personal(client, world, doc["id"], field_name="Ky"), 422)
    assert says in refused["detail"], refused
    assert await _signatures(client, world, doc["id"]) == []


async def test_a_new_box_and_an_existing_field_are_held_to_one_smallest_size(client: Client, world: World) -> None:
    # A box 9.9 points wide is refused whether the signer draws it or the PDF brings it, and
    # both refusals name the same smallest size.
    doc = await _upload(client, world, pdf=_with_empty_field(make_pdf(), "Ky", (300, 100, 309.9, 180)))
    new_box = _problem(await _personal(client, world, doc["id"], box=[300, 100, 309.9, 180]), 422)
    assert "by 10 points (3.5 mm) at least" in str(new_box), new_box
    field = _problem(await _personal(client, world, doc["id"], field_name="Ky"), 422)
    assert "(at least 10 x 10)" in field["detail"], field
    assert await _signatures(client, world, doc["id"]) == []


async def test_the_visible_page_is_the_crop_box_and_the_seal_stays_on_it(client: Client, world: World) -> None:
    # The crop box hides the lower half: a box there is not seen, and the default place is in what is.
    doc = await _upload(client, world, pdf=_cropped(make_pdf(), (0, 400, 595, 842)))
    hidden = _problem(await _personal(client, world, doc["id"], box=BOX), 422)
    assert "not inside page 0" in hidden["detail"], hidden
    assert "y from 400 to 842" in hidden["detail"], hidden
    assert (await _personal(client, world, doc["id"])).status_code == 201
    # A signature in the page's lower left corner: the seal over its left third is moved onto the page.
    corner = await _upload(client, world)
    assert (await _personal(client, world, corner["id"], box=[0, 0, 120, 60])).status_code == 201
    sealed = await _seal(client, world, corner["id"])
    assert sealed.status_code == 201, sealed.text
    pdf = (await client.get(f"/api/v1/documents/{corner['id']}/content", headers=world.auth("xa1"))).content
    reader = PdfFileReader(io.BytesIO(pdf))
    rects = [[float(v) for v in ref.get_object()["/Rect"]] for ref in reader.root["/AcroForm"]["/Fields"]]
    assert all(r[0] >= 0 and r[1] >= 0 and r[2] <= 595 and r[3] <= 842 for r in rects), rects


# -- a PDF whose objects have the wrong types ---------------------------------------------------


def _ill_typed(catalog_extra: str = "", page_extra: str = "", media_box: str = "0 0 595 842") -> bytes:
    from tests.factories.pdf import assemble_pdf

    return assemble_pdf([
        f"<< /Type /Catalog /Pages 2 0 R {catalog_extra} >>".encode(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        f"<< /Type /Page /Parent 2 0 R /MediaBox [{media_box}] /Contents 4 0 R {page_extra} >>".encode(),
        b"<< /Length 33 >>\nstream\nBT /F1 12 Tf 72 720 Td (x) Tj ET\nendstream",
    ])


@pytest.mark.parametrize(("catalog_extra", "page_extra", "media_box"), [
    ("", "/Annots 5", "0 0 595 842"), ("", "/Annots << /A 1 >>", "0 0 595 842"),
    ("/AcroForm << /Fields 7 >>", "", "0 0 595 842"), ("/Perms 5", "", "0 0 595 842"),
    ("/Extensions 5", "", "0 0 595 842"), ("", "", f"0 0 {'9' * 400} 842"),
    ("", f"/Deep {'[' * 100_000}{']' * 100_000}", "0 0 595 842"),
])
async def test_a_pdf_with_ill_typed_objects_is_refused_and_leaves_nothing(
        client: Client, world: World, settings: Settings, dev_keys: Path, catalog_extra: str, page_extra: str,
        media_box: str) -> None:
    # Such files pass the upload's checks; signing them raised TypeError, AttributeError,
    # OverflowError or RecursionError inside pyHanko: a 500, and an empty scratch file left behind.
    pdf = _ill_typed(catalog_extra, page_extra, media_box)
    doc = await _upload(client, world, pdf=pdf, attachments=[("phu-luc.pdf", pdf)])
    before = _files(settings)
    answers = [
        await _personal(client, world, doc["id"], box=BOX),
        await client.post(f"/api/v1/documents/{doc['id']}/attachments/{doc['attachments'][0]['id']}/signature",
                          headers=world.auth("xa1")),
        await client.post(f"/api/v1/documents/{doc['id']}/signatures/external", headers=world.auth("xa1_signer"),
                          json={"box": BOX, "certificate_chain": _chain(dev_keys)}),
    ]
    for answer in answers:
        problem = _problem(answer, 422)
        assert "internal structure is damaged" in problem["detail"], problem
        assert "save it again as PDF" in problem["detail"]
        assert problem["title"] != TOKEN_TITLE
        assert doc["sha256"][:8] not in problem["detail"]
    assert await _signatures(client, world, doc["id"]) == []
    assert _files(settings) == before


def _doubling_field_tree(depth: int) -> bytes:
    """A PDF whose form-field tree lists each node twice at each of ``depth`` levels, with a
    /ByteRange in a comment so that verification cannot tell at a glance it holds no signature."""
    from tests.factories.pdf import assemble_pdf

    objects = [b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [5 0 R] >> >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
               b"<< /Length 33 >>\nstream\nBT /F1 12 Tf 72 720 Td (x) Tj ET\nendstream"]
    for level in range(depth):
        kid = level + 6
        objects.append(f"<< /T (n{level}) /Kids [{kid} 0 R {kid} 0 R] >>".encode())
    objects.append(b"<< /T (leaf) /FT /Sig /Rect [0 0 0 0] /Subtype /Widget >> % /ByteRange [0 10 20 30]")
    return assemble_pdf(objects)


async def test_a_form_field_tree_that_names_its_fields_twice_is_refused_at_once(
        client: Client, world: World, dev_keys: Path) -> None:
    # pyHanko walks every path of the tree: 2**40 fields held a thread and the only SQLite
    # connection for good, and verifying the file held a verification worker for its whole time limit.
    pdf = _doubling_field_tree(40)
    doc = await _upload(client, world, pdf=pdf)
    personal = await asyncio.wait_for(_personal(client, world, doc["id"], box=BOX), 20)
    assert "lists one of its fields twice" in _problem(personal, 422)["detail"]
    prepared = await asyncio.wait_for(client.post(
        f"/api/v1/documents/{doc['id']}/signatures/external", headers=world.auth("xa1_signer"),
        json={"box": BOX, "certificate_chain": _chain(dev_keys)}), 20)
    assert "lists one of its fields twice" in _problem(prepared, 422)["detail"]
    verdict = await asyncio.wait_for(_verdict(client, world, pdf), 20)
    assert verdict != "passed"
    assert await _signatures(client, world, doc["id"]) == []
