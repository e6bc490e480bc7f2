"""The fast paths give the same results as the slow ones they replace.

* FastCmsSigner: byte-identical CMS to pyHanko's for PAdES B-B and B-T;
* the verification workers' hex-string reader and name memos: same objects,
  same errors, same stream position as pyHanko/asn1crypto;
* a big file is signed by streaming (memory does not grow with the file).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
from pathlib import Path

import pytest
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.misc import PdfStreamError
from pyhanko.sign import signers
from pyhanko.sign.timestamps import TimeStamper

from service.signing import FileKeyProvider, Placement, SignatureLevel, SigningOptions, Verdict, Verifier, _speedups
from service.signing._fastcms import FastCmsSigner, fast_signer
from service.signing._validate import _Trust, validate_file
from service.signing.pades import SignJob, run_signing
from tests.signing.conftest import PASSPHRASE, Env
from tests.signing.pdfs import write_big_pdf


def _simple_signer(env: Env) -> signers.SimpleSigner:
    cert = env.personal
    loaded = signers.SimpleSigner.load(
        str(cert.key_path),
        str(cert.cert_path),
        ca_chain_files=[str(p) for p in cert.chain_paths],
        key_passphrase=PASSPHRASE,
    )
    assert loaded is not None
    return loaded


class _ReplayingTsa(TimeStamper):
    """Answers the same imprint with the same token, so two CMS can be compared."""

    def __init__(self, env: Env) -> None:
        super().__init__(include_nonce=False)
        self._env, self._tokens = env, {}  # type: ignore[var-annotated]

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        key = req["message_imprint"].dump()
        if key not in self._tokens:
            self._tokens[key] = self._env.pki.timestamp_response(req)
        return self._tokens[key]


@pytest.mark.parametrize("with_tsa", [False, True], ids=["B-B", "B-T"])
def test_fast_cms_is_byte_identical_to_pyhanko(env: Env, with_tsa: bool) -> None:
    slow = _simple_signer(env)
    tsa = _ReplayingTsa(env) if with_tsa else None
    digest = hashlib.sha256(b"document bytes").digest()

    async def both() -> tuple[bytes, bytes]:
        reference = await slow.async_sign(digest, "sha256", use_pades=True, timestamper=tsa)
        fast = await FastCmsSigner(slow).async_sign(digest, "sha256", use_pades=True, timestamper=tsa)
        return reference.dump(), fast.dump()

    reference, fast = asyncio.run(both())
    assert fast == reference


def test_fast_signer_is_cached_per_signer_and_leaves_other_cms_to_pyhanko(env: Env) -> None:
    slow = _simple_signer(env)
    assert fast_signer(slow) is fast_signer(slow)
    assert fast_signer(fast_signer(slow)) is fast_signer(slow)
    # adbe.pkcs7.detached carries CMS algorithm protection: pyHanko's own path builds it
    cms = asyncio.run(fast_signer(slow).async_sign(hashlib.sha256(b"x").digest(), "sha256", use_pades=False))
    attrs = {a["type"].native for a in cms["content"]["signer_infos"][0]["signed_attrs"]}
    assert "cms_algorithm_protection" in attrs


# -- verification worker speed-ups -------------------------------------------------------
HEX_CASES = [
    b"<48656c6c6f>",
    b"<4 8 6\n5\r6c\t6c 6f>",
    b"<abc>",
    b"<>",
    b"<FEFF0041>",
    b"<" + b"30820" + b"0" * 20000 + b">",
    b"<41 % comment\n42>",
]


@pytest.mark.parametrize("data", HEX_CASES, ids=range(len(HEX_CASES)))
def test_hex_reader_matches_pyhanko(data: bytes) -> None:
    ours, theirs = io.BytesIO(data + b" /Next"), io.BytesIO(data + b" /Next")
    assert _speedups.read_hex_string(ours) == _speedups._ORIGINAL_HEX(theirs)
    assert ours.tell() == theirs.tell()


@pytest.mark.parametrize("data", [b"<41 4G>", b"<4142"], ids=["bad-digit", "unterminated"])
def test_hex_reader_fails_like_pyhanko(data: bytes) -> None:
    with pytest.raises(PdfStreamError) as theirs:
        _speedups._ORIGINAL_HEX(io.BytesIO(data))
    with pytest.raises(PdfStreamError) as ours:
        _speedups.read_hex_string(io.BytesIO(data))
    assert str(ours.value) == str(theirs.value)


def _name(cn: str, org: str = "Văn phòng Tỉnh ủy") -> asn1_x509.Name:
    return asn1_x509.Name.build({"common_name": cn, "organization_name": org, "country_name": "VN"})


@pytest.mark.parametrize(
    ("left", "right"),
    [("Nguyễn Văn An", "Nguyễn Văn An"), ("Nguyễn Văn An", "nguyễn  văn an"), ("Nguyễn Văn An", "Trần Thị Bình")],
    ids=["same", "case-and-space", "different"],
)
def test_name_memos_match_asn1crypto(left: str, right: str) -> None:
    a, b = _name(left), asn1_x509.Name.load(_name(right).dump())
    for _ in range(2):  # second round answers from the memo
        assert _speedups._name_eq(a, b) == _speedups._ORIGINAL_NAME_EQ(a, b)
        assert _speedups._name_hashable(b) == _speedups._ORIGINAL_NAME_HASHABLE.fget(b)
    assert _speedups._name_eq(a, "not a name") is False


CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpora" / "shadow-attacks"


async def _own_documents(env: Env, tmp_path: Path) -> list[Path]:
    box = (340.0, 115.0, 500.0, 210.0)
    personal, sealed = tmp_path / "p.pdf", tmp_path / "sealed.pdf"
    await env.signer_for(env.personal).sign_personal(
        env.sample("speedups.pdf"), personal, placement=Placement(box=box), signer_name="Nguyễn Văn An"
    )
    await env.signer_for(env.organisation).sign_organisation(personal, sealed, unit_name="Văn phòng Tỉnh ủy")
    tampered = tmp_path / "tampered.pdf"
    data = bytearray(sealed.read_bytes())
    data[data.index(b"Noi dung van ban mau")] = ord("X")
    tampered.write_bytes(bytes(data))
    return [personal, sealed, tampered]


@pytest.mark.asyncio
async def test_worker_speedups_give_identical_reports(env: Env, tmp_path: Path) -> None:
    files = await _own_documents(env, tmp_path)
    files += sorted(CORPUS.rglob("*.pdf")) if CORPUS.exists() else []
    trust = env.trust()

    async def reports() -> list[dict[str, object]]:
        parsed = _Trust(trust)
        result = []
        for path in files:
            report = (await validate_file(path, parsed)).to_dict()
            report.pop("checked_at")
            result.append(report)
        return result

    _speedups.uninstall()
    plain = await reports()
    _speedups.install()
    try:
        fast, from_memos = await reports(), await reports()
    finally:
        _speedups.uninstall()
    assert fast == plain
    assert from_memos == plain


# -- big files ---------------------------------------------------------------------------------
def _status(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(field + ":"))


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux >= 4.0)
    except OSError:
        return False
    return True


@pytest.mark.asyncio
async def test_big_file_is_signed_by_streaming(env: Env, tmp_path: Path) -> None:
    size_mb = 96
    src, dst = write_big_pdf(tmp_path / "big.pdf", size_mb), tmp_path / "big-signed.pdf"
    cert = env.personal
    signer = await FileKeyProvider(cert.key_path, cert.cert_path, PASSPHRASE, cert.chain_paths).signer()
    options = SigningOptions(level=SignatureLevel.B_B)
    job = SignJob.invisible("Sig-Big", signer, options)
    await run_signing(src, dst, job)  # warm-up: imports and caches are not what we measure
    if not _reset_peak_rss():
        pytest.skip("cannot reset the peak RSS counter here")
    before = _status("VmRSS")
    result = await run_signing(src, dst, job)
    grew = _status("VmHWM") - before
    assert grew < size_mb * 1024 * 1024 // 4, f"peak RSS grew by {grew / 2**20:.0f} MB for a {size_mb} MB file"
    assert result.output.stat().st_size > src.stat().st_size
    async with Verifier(env.trust()) as verifier:
        report = await verifier.verify(dst)
    assert report.verdict is Verdict.PASSED, [f.code for f in report.findings]


# -- raw signature count ---------------------------------------------------------------------------
def test_raw_signature_count_is_linear_in_digit_runs(tmp_path: Path) -> None:
    """A signature's zero padding is a run of thousands of digits; the object regex once
    backtracked quadratically in it (0.15-0.75 s per signature, minutes for crafted files)."""
    from service.signing._count import count_signatures

    pdf = tmp_path / "digits.pdf"
    pdf.write_bytes(b"%PDF-1.7\n1 0 obj\n<< /Contents <" + b"0" * 20_000 + b"> >>\nendobj\n%%EOF\n")
    start = time.perf_counter()
    count_signatures(pdf)
    assert time.perf_counter() - start < 0.5
