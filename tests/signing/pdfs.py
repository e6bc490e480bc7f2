"""Minimal real PDFs for the signing tests (hand-written PDF syntax, no library)."""

from __future__ import annotations

from pathlib import Path

from tests.factories.pdf import assemble_pdf

__all__ = ["write_sample_pdf", "write_big_pdf"]

_LINES = [
    (72, 770, 12, "DANG CONG SAN VIET NAM"),
    (72, 740, 11, "So 12-CV/VPTU"),
    (72, 700, 14, "CONG VAN ve viec trao doi van ban dien tu"),
    (72, 660, 11, "Noi dung van ban mau dung de kiem thu chu ky so."),
    (360, 230, 11, "T/L BAN THUONG VU"),
    (360, 215, 11, "CHANH VAN PHONG"),
    (370, 100, 11, "Nguyen Van An"),
]


def _content(lines: list[tuple[int, int, int, str]]) -> bytes:
    ops = [f"BT /F1 {size} Tf {x} {y} Td ({text}) Tj ET" for x, y, size, text in lines]
    return "\n".join(ops).encode("latin-1")


def _stream(data: bytes, extra: str = "") -> bytes:
    return f"<< /Length {len(data)} {extra}>>\nstream\n".encode() + data + b"\nendstream"


def write_sample_pdf(path: Path, *, title: str = "") -> Path:
    lines = list(_LINES) + ([(72, 620, 11, title)] if title else [])
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        _stream(_content(lines)),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman >>",
    ]
    path.write_bytes(assemble_pdf(objects))
    return path


def write_big_pdf(path: Path, size_mb: int) -> Path:
    """A one-page PDF carrying an unreferenced-by-content ``size_mb`` MB stream, written in chunks."""
    head = write_sample_pdf(path.with_suffix(".tmp.pdf")).read_bytes()
    path.with_suffix(".tmp.pdf").unlink()
    body_end = head.index(b"xref\n")
    chunk = bytes(range(256)) * 4096  # 1 MiB
    with open(path, "wb") as fh:
        fh.write(head[:body_end])
        big_offset = fh.tell()
        fh.write(f"6 0 obj\n<< /Length {size_mb * len(chunk)} >>\nstream\n".encode())
        for _ in range(size_mb):
            fh.write(chunk)
        fh.write(b"\nendstream\nendobj\n")
        offsets = _offsets(head[:body_end]) + [big_offset]
        xref = fh.tell()
        fh.write(f"xref\n0 {len(offsets) + 1}\n0000000000 65535 f \n".encode())
        fh.write(b"".join(f"{off:010d} 00000 n \n".encode() for off in offsets))
        trailer = (f"trailer\n<< /Size {len(offsets) + 1} /Root 1 0 R /Info << /Big 6 0 R >> >>\n"
                   f"startxref\n{xref}\n%%EOF\n")
        fh.write(trailer.encode())
    return path


def _offsets(body: bytes) -> list[int]:
    result, pos = [], 0
    while (pos := body.find(b" 0 obj\n", pos)) != -1:
        start = body.rfind(b"\n", 0, pos) + 1
        result.append(start)
        pos += 1
    return result
