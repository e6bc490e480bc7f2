"""The independent signature count stays linear on hostile input."""

from __future__ import annotations

import time
from pathlib import Path

from service.signing._count import count_signatures


def test_long_digit_runs_do_not_stall_the_count(tmp_path: Path) -> None:
    # A signature's zero padding is a run of thousands of digits; a crafted file can hold millions.
    pdf = tmp_path / "digits.pdf"
    pdf.write_bytes(b"%PDF-1.7\n1 0 obj\n<< /FT /Sig /ByteRange [0 10 20 30] >>\nendobj\n"
                    + b"0" * 2_000_000 + b"\n2 0 obj\n<< /FT /Sig >>\nendobj\n%%EOF\n")
    started = time.perf_counter()
    counts = count_signatures(pdf)
    assert time.perf_counter() - started < 2.0
    assert (counts.byte_ranges, counts.sig_fields) == (1, 2)
