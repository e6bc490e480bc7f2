"""Real PDFs for tests: a minimal valid document with a Vietnamese subject line."""

from __future__ import annotations

import json
from typing import Any


def make_pdf(text: str = "Ke hoach so 35-KH/DU", pages: int = 1, padding: int = 0) -> bytes:
    """A small, valid PDF (correct xref offsets); ``padding`` adds bytes in a stream."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + i * 2} 0 R" for i in range(pages))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode())
    for i in range(pages):
        content = f"BT /F1 14 Tf 72 720 Td ({text} - trang {i + 1}) Tj ET".encode() + b"\n%" + b"x" * padding
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents {4 + i * 2} 0 R "
                       f"/Resources << /Font << /F1 {3 + pages * 2} 0 R >> >> >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman >>")
    return assemble_pdf(objects)


def assemble_pdf(objects: list[bytes]) -> bytes:
    """A PDF of ``objects`` (object 1 is the catalog) with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def metadata(number: str = "35-KH/ĐU", **overrides: Any) -> dict[str, Any]:
    meta = {"number_notation": number, "doc_type": "Kế hoạch", "issued_on": "2026-11-20",
            "place": "Tân Lập", "subject": "Kế hoạch tổ chức hội nghị sơ kết công tác Đảng",
            "signer_name": "Nguyễn Văn An", "signer_position": "Bí thư", "urgency": "Thường",
            "secrecy": "", "deadline": "2026-11-30", "recipients_text": "Như trên; Lưu VP."}
    meta.update(overrides)
    return meta


def upload_form(meta: dict[str, Any], pdf: bytes | None = None, filename: str = "kehoach.pdf",
                attachments: list[tuple[str, bytes]] | None = None) -> dict[str, Any]:
    files: list[Any] = [("file", (filename, make_pdf() if pdf is None else pdf, "application/pdf"))]
    for name, data in attachments or []:
        files.append(("attachments", (name, data, "application/pdf")))
    return {"data": {"metadata": json.dumps(meta, ensure_ascii=False)}, "files": files}
