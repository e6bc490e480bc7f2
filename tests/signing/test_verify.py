"""Verification outcomes on documents we sign ourselves."""

from __future__ import annotations

import mmap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from service.signing import DevelopmentPki, Indication, Modification, Placement, Verdict, Verifier, VerifierOptions
from tests.signing.conftest import PASSPHRASE, Env

pytestmark = pytest.mark.asyncio
BOX = (340.0, 115.0, 500.0, 210.0)


async def _sealed(env: Env, name: str) -> Path:
    src = env.sample(f"{name}-in.pdf")
    personal = env.tmp / f"{name}-p.pdf"
    await env.signer_for(env.personal).sign_personal(
        src, personal, placement=Placement(box=BOX), signer_name="Nguyễn Văn An")
    sealed = env.tmp / f"{name}.pdf"
    await env.signer_for(env.organisation).sign_organisation(personal, sealed, unit_name="Văn phòng Tỉnh ủy")
    return sealed


async def _verify(env: Env, path: Path):  # type: ignore[no-untyped-def]
    async with Verifier(env.trust()) as verifier:
        return await verifier.verify(path)


async def test_personal_then_seal_passes(env: Env) -> None:
    report = await _verify(env, await _sealed(env, "ok"))
    assert report.verdict is Verdict.PASSED
    assert [s.field_name for s in report.signatures] == ["Sig-Personal", "Sig-Organisation"]
    assert report.signatures[0].modification is Modification.PERMITTED
    assert report.fields_counted == report.fields_enumerated == 2
    assert report.signatures[1].proven_time is not None
    assert report.signatures[1].level == "B-T"


async def test_workers_forked_from_a_large_process_keep_their_whole_memory_budget(env: Env) -> None:
    # A server that has run for a while holds address space it does not use (the malloc
    # arenas of threads that have ended: 64 MB each). Workers forked from it inherit that
    # address space; their memory limit must not count it, or they have no room to verify.
    sealed = await _sealed(env, "large-parent")
    budget_mb = 512
    unused = mmap.mmap(-1, budget_mb << 20)  # address space only: never touched, costs no memory
    try:
        async with Verifier(env.trust(), VerifierOptions(memory_mb=budget_mb, workers=1)) as verifier:
            report = await verifier.verify(sealed)
    finally:
        unused.close()
    problems = [f.detail for f in report.findings] + [f.detail for s in report.signatures for f in s.findings]
    assert report.verdict is Verdict.PASSED, problems


async def test_byte_changed_inside_signed_range_is_hash_failure(env: Env) -> None:
    sealed = await _sealed(env, "hash")
    data = bytearray(sealed.read_bytes())
    pos = data.index(b"Noi dung van ban mau")
    data[pos] = ord("X")
    sealed.write_bytes(bytes(data))
    report = await _verify(env, sealed)
    assert report.verdict is Verdict.FAILED
    assert all(s.indication is Indication.TOTAL_FAILED for s in report.signatures)
    assert all(s.sub_indication == "HASH_FAILURE" for s in report.signatures)


def _append_update(src: Path, dst: Path, change: str) -> None:
    with open(src, "rb") as fh:
        writer = IncrementalPdfFileWriter(fh)
        if change == "page":
            media_box = [generic.NumberObject(v) for v in (0, 0, 595, 842)]
            writer.insert_page(generic.DictionaryObject({
                generic.NameObject("/Type"): generic.NameObject("/Page"),
                generic.NameObject("/MediaBox"): generic.ArrayObject(media_box),
            }))
        elif change == "text":
            page_ref, _ = writer.find_page_for_modification(0)
            page = page_ref.get_object()
            new = generic.StreamObject(stream_data=b"BT /F1 30 Tf 72 400 Td (DA DUYET CHI 1 TY) Tj ET")
            page[generic.NameObject("/Contents")] = writer.add_object(new)
            writer.update_container(page)
        else:
            page_ref, _ = writer.find_page_for_modification(0)
            page = page_ref.get_object()
            annot = generic.DictionaryObject({
                generic.NameObject("/Type"): generic.NameObject("/Annot"),
                generic.NameObject("/Subtype"): generic.NameObject("/Text"),
                generic.NameObject("/Rect"):
                    generic.ArrayObject([generic.NumberObject(v) for v in (100, 100, 120, 120)]),
                generic.NameObject("/Contents"): generic.TextStringObject("sửa"),
            })
            page[generic.NameObject("/Annots")] = generic.ArrayObject([writer.add_object(annot)])
            writer.update_container(page)
        with open(dst, "wb") as out:
            writer.write(out)


@pytest.mark.parametrize("change", ["page", "text", "annotation"])
async def test_update_after_seal_is_not_passed(env: Env, change: str) -> None:
    sealed = await _sealed(env, f"upd-{change}")
    changed = env.tmp / f"upd-{change}-changed.pdf"
    _append_update(sealed, changed, change)
    report = await _verify(env, changed)
    assert report.verdict is not Verdict.PASSED
    last = report.signatures[-1]
    assert last.intact
    assert last.crypto_valid
    assert last.modification in (Modification.TAMPERED, Modification.REJECTED_BY_POLICY)
    assert last.indication is not Indication.TOTAL_PASSED


async def test_revoked_before_signing_is_failed_revoked(env: Env) -> None:
    cert = env.pki.issue_personal_cert("u-revoked", "Trần Thị Bình", "binh@example.vn")
    env.pki.revoke(cert.serial, "key_compromise", datetime.now(UTC) - timedelta(hours=1))
    out = env.tmp / "revoked-before.pdf"
    await env.signer_for(cert).sign_personal(
        env.sample("rb.pdf"), out, placement=Placement(box=BOX), signer_name="Trần Thị Bình")
    report = await _verify(env, out)
    [sig] = report.signatures
    assert report.verdict is Verdict.FAILED
    assert (sig.indication, sig.sub_indication) == (Indication.TOTAL_FAILED, "REVOKED")


async def test_revoked_after_timestamped_signing_passes(env: Env) -> None:
    cert = env.pki.issue_personal_cert("u-later", "Lê Văn Cường", "cuong@example.vn")
    out = env.tmp / "revoked-after.pdf"
    await env.signer_for(cert).sign_personal(
        env.sample("ra.pdf"), out, placement=Placement(box=BOX), signer_name="Lê Văn Cường")
    env.pki.revoke(cert.serial, "affiliation_changed", datetime.now(UTC) + timedelta(seconds=2))
    report = await _verify(env, out)
    [sig] = report.signatures
    assert sig.proven_time is not None
    assert report.verdict is Verdict.PASSED, [f.code for f in sig.findings]


async def test_untrusted_root_is_indeterminate(env: Env) -> None:
    other = DevelopmentPki.init(env.tmp / "other-keys", PASSPHRASE)
    sealed = await _sealed(env, "untrusted")
    async with Verifier(other.trust_config()) as verifier:
        report = await verifier.verify(sealed)
    assert report.verdict is Verdict.INDETERMINATE
    assert all(s.indication is Indication.INDETERMINATE and s.intact for s in report.signatures)


async def test_garbage_file_never_crashes(env: Env) -> None:
    junk = env.tmp / "junk.pdf"
    junk.write_bytes(b"%PDF-1.7\n1 0 obj << /ByteRange [0 10 20 30] /FT /Sig >>\n%%EOF")
    report = await _verify(env, junk)
    assert report.verdict is not Verdict.PASSED
    assert report.findings


async def _timestamped(env: Env, src: Path, name: str) -> Path:
    from pyhanko.sign.signers import PdfTimeStamper

    from service.signing import build_timestamper

    out = env.tmp / name
    with src.open("rb") as fh, out.open("wb") as dst:
        stamper = PdfTimeStamper(build_timestamper(env.trust(), env.pki.timestamp_response))
        await stamper.async_timestamp_pdf(IncrementalPdfFileWriter(fh), "sha256", output=dst)
    return out


async def test_a_document_timestamp_alone_is_no_signature(env: Env) -> None:
    # A timestamp proves when the bytes existed, not who stands behind them.
    report = await _verify(env, await _timestamped(env, env.sample("ts-only-in.pdf"), "ts-only.pdf"))
    assert [(s.kind, s.indication) for s in report.signatures] == [("document_timestamp", Indication.TOTAL_PASSED)]
    assert report.verdict is Verdict.INDETERMINATE
    assert "NO_SIGNATURE" in [f.code for f in report.findings]


async def test_a_signature_with_a_later_document_timestamp_still_passes(env: Env) -> None:
    src = env.sample("sig-ts-in.pdf")
    signed = env.tmp / "sig-ts-p.pdf"
    await env.signer_for(env.personal).sign_personal(
        src, signed, placement=Placement(box=BOX), signer_name="Nguyễn Văn An")
    report = await _verify(env, await _timestamped(env, signed, "sig-ts.pdf"))
    assert [s.kind for s in report.signatures] == ["signature", "document_timestamp"]
    assert report.verdict is Verdict.PASSED


def _white_sheet(writer: IncrementalPdfFileWriter, field: str) -> None:
    """Give the signature field ``field`` a page-sized appearance: a white sheet with new text."""
    ops = b"1 1 1 rg 0 0 595 842 re f 0 0 0 rg BT /F1 28 Tf 60 690 Td (CHUYEN 5 TY DONG) Tj ET"
    font = writer.add_object(generic.DictionaryObject({
        generic.NameObject("/Type"): generic.NameObject("/Font"),
        generic.NameObject("/Subtype"): generic.NameObject("/Type1"),
        generic.NameObject("/BaseFont"): generic.NameObject("/Helvetica")}))
    sheet = writer.add_object(generic.StreamObject({
        generic.NameObject("/Type"): generic.NameObject("/XObject"),
        generic.NameObject("/Subtype"): generic.NameObject("/Form"),
        generic.NameObject("/BBox"): generic.ArrayObject([generic.NumberObject(v) for v in (0, 0, 595, 842)]),
        generic.NameObject("/Resources"): generic.DictionaryObject({generic.NameObject("/Font"):
                                                                     generic.DictionaryObject({
                                                                         generic.NameObject("/F1"): font})}),
    }, stream_data=ops))
    for ref in writer.root["/AcroForm"]["/Fields"]:
        obj = ref.get_object()
        if obj.get("/T") == field:
            obj["/AP"] = generic.DictionaryObject({generic.NameObject("/N"): sheet})
            writer.update_container(obj)


async def test_a_document_timestamp_drawn_over_the_page_after_a_signature_fails(env: Env) -> None:
    # Anyone can get a document timestamp, key or no key; one whose field paints a white sheet
    # and new text over the signed page would otherwise pass as a permitted later signature.
    from pyhanko.sign import fields
    from pyhanko.sign.signers import PdfTimeStamper

    from service.signing import build_timestamper

    signed = env.tmp / "overlay-p.pdf"
    await env.signer_for(env.personal).sign_personal(
        env.sample("overlay-in.pdf"), signed, placement=Placement(box=BOX), signer_name="Nguyễn Văn An")
    forged = env.tmp / "overlay.pdf"
    with signed.open("rb") as fh, forged.open("wb") as dst:
        writer = IncrementalPdfFileWriter(fh)
        fields.append_signature_field(writer, fields.SigFieldSpec("Timestamp", on_page=0, box=(0, 0, 595, 842)))
        _white_sheet(writer, "Timestamp")
        stamper = PdfTimeStamper(build_timestamper(env.trust(), env.pki.timestamp_response), field_name="Timestamp")
        await stamper.async_timestamp_pdf(writer, "sha256", output=dst)
    report = await _verify(env, forged)
    assert report.verdict is Verdict.FAILED
    personal = report.signatures[0]
    assert personal.modification is Modification.TAMPERED
    assert "VISIBLE_TIMESTAMP" in [f.code for f in personal.findings]
    assert personal.claimed_time is not None
    assert personal.claimed_time.endswith("+07:00"), "times are shown in Vietnam time"
