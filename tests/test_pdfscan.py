"""The upload's single pass counts signature markers exactly as reading the whole file does."""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

import pytest

from service import pdfscan
from service.pdfscan import Scanner, scan_file
from tests.factories.pdf import make_pdf

# Two signatures' worth of markers, placed so that small blocks cut through them.
SIGNED_PARTS = (b"1 0 obj\n<< /FT /Sig /V 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Sig /ByteRange [0 10 20 30] >>\n"
                b"endobj\n3 0 obj\n<< /FT\n/Sig /V 4 0 R >>\nendobj\n4 0 obj\n<< /ByteRange [0 1 2 3] >>\nendobj\n")


def _in_blocks(data: bytes, size: int) -> Scanner:
    scanner = Scanner()
    for at in range(0, len(data), size):
        scanner.update(data[at:at + size])
    return scanner


@pytest.mark.parametrize("block", [1, 3, 7, 10, 64, 65, 4096])
def test_markers_cut_by_any_block_size_count_once(block: int, tmp_path: Path) -> None:
    pdf = make_pdf()
    data = pdf[:20] + SIGNED_PARTS + pdf[20:]
    path = tmp_path / "signed.pdf"
    path.write_bytes(data)
    whole = scan_file(path)
    assert (whole.byte_ranges, whole.sig_fields) == (2, 2)
    streamed = _in_blocks(data, block).result()
    assert streamed == whole
    assert streamed.sha256 == hashlib.sha256(data).hexdigest()


def test_a_file_without_signature_values_scans_as_unsigned(tmp_path: Path) -> None:
    path = tmp_path / "plain.pdf"
    path.write_bytes(make_pdf())
    scan = scan_file(path, chunk=16)
    assert (scan.byte_ranges, scan.sig_fields) == (0, 0)


# The markers as the scan defines them, over the whole file at once: a /ByteRange key, and
# /Sig as the value of /FT (PDF white space between them), neither followed by a name
# character. The C search and Python's must both count exactly these.
_REFERENCE = re.compile(rb"/(?:(ByteRange)|FT[\x00\t\n\x0c\r ]{0,60}/Sig)(?![A-Za-z0-9_])")


def _reference(data: bytes) -> tuple[int, int]:
    found = [m.group(1) is not None for m in _REFERENCE.finditer(data)]
    return sum(found), len(found) - sum(found)


def _random_pdf_like(seed: int) -> bytes:
    rng = random.Random(seed)
    pieces = [b"/ByteRange [0 1 2 3] ", b"/FT /Sig ", b"/FT/Sig>>", b"/FT\r\n\x00/Sig ", b"/Type /Sig ",
              b"/SigFlags 3 ", b"/ByteRanges ", b"/FT /Tx ", b"/Sig ", b"/FT " + b" " * 40 + b"/Sig\n"]
    out = bytearray()
    while len(out) < 20_000:
        if rng.random() < 0.2:
            out += rng.choice(pieces)
        else:
            out += rng.randbytes(rng.randint(1, 300))
    return bytes(out)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("finder", ["c", "python"])
def test_the_scan_counts_what_the_definition_counts_in_any_blocks(seed: int, finder: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    if finder == "python":
        monkeypatch.setattr(pdfscan, "_find", pdfscan._python_find)
    data = _random_pdf_like(seed)
    expected = _reference(data)
    assert min(expected) > 0  # the data holds both kinds of marker
    rng = random.Random(seed)
    scanner, at = Scanner(), 0
    while at < len(data):
        step = rng.choice([1, 2, 5, 11, 63, 64, 65, 200, 4096])
        scanner.update(data[at:at + step])
        at += step
    assert (scanner.byte_ranges, scanner.sig_fields) == expected
    assert scanner.result().sha256 == hashlib.sha256(data).hexdigest()


def test_names_that_only_start_like_a_marker_do_not_count() -> None:
    scanner = Scanner()
    scanner.update(b"<< /ByteRanges [0 1] /FT /Signature /SigFlags 3 /Type /Sig /FTX /Sig >>")
    assert (scanner.byte_ranges, scanner.sig_fields) == (0, 0)


def test_the_c_search_is_in_use_on_this_platform() -> None:
    assert pdfscan._find is not pdfscan._python_find
