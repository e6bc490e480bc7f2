"""The upload's single pass counts signature markers exactly as reading the whole file does."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

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
