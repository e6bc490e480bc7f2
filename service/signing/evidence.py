"""Evidence package: one ZIP an auditor or a court can check offline.

Layout::

    document/<file>.pdf     the verified PDF, byte for byte
    report.json             VerificationReport.to_dict()
    report.html             render_html(report), printable
    certs/<sha256>.pem      chain certificates named in the report (taken from the
                            signatures' CMS), the timestamping authorities' (from the
                            timestamp tokens), plus the ones the caller passes (roots ...)
    revocation/<n>-<sha256>.crl | .ocsp   CRLs / OCSP responses the caller held
    history.json            the document's history (caller-supplied dicts)
    manifest.json           every file above with its size and SHA-256

Synchronous and streaming (the PDF is copied in chunks, never loaded whole):
from async code call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from asn1crypto import cms, core, pem
from asn1crypto import x509 as asn1_x509

from service.signing.errors import SigningError
from service.signing.html import render_html
from service.signing.pades import VN_TZ, file_sha256
from service.signing.report import VerificationReport

__all__ = ["build_evidence_zip"]

_BYTE_RANGE = re.compile(rb"/ByteRange\s*\[\s*(\d{1,15})\s+(\d{1,15})\s+(\d{1,15})\s+(\d{1,15})\s*\]")
_MAX_CMS_HEX = 4 * 1024 * 1024
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def build_evidence_zip(
    pdf_path: Path,
    report: VerificationReport,
    history: list[dict[str, Any]],
    out_path: Path,
    *,
    certificates_der: Iterable[bytes] = (),
    crls_der: Iterable[bytes] = (),
    ocsps_der: Iterable[bytes] = (),
    document_name: str | None = None,
) -> Path:
    """Write the evidence ZIP to ``out_path`` (atomically) and return it; the PDF is
    ``document/<document_name>`` (default: the file's own name).

    Raises SigningError when the PDF cannot be read or the ZIP cannot be written.
    """
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    manifest: list[dict[str, Any]] = []
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            doc_name = f"document/{_safe(document_name or pdf_path.name)}"
            zf.write(pdf_path, doc_name, compress_type=zipfile.ZIP_STORED)
            manifest.append(_entry(doc_name, file_sha256(pdf_path), pdf_path.stat().st_size))
            for name, data in _members(pdf_path, report, history, certificates_der, crls_der, ocsps_der):
                zf.writestr(name, data)
                manifest.append(_entry(name, hashlib.sha256(data).hexdigest(), len(data)))
            zf.writestr("manifest.json", _json(_manifest(report, manifest)))
        os.replace(tmp, out_path)
    except (OSError, zipfile.BadZipFile) as exc:
        tmp.unlink(missing_ok=True)
        raise SigningError(f"cannot build the evidence package: {exc}") from exc
    return out_path


def _members(
    pdf_path: Path,
    report: VerificationReport,
    history: list[dict[str, Any]],
    certificates_der: Iterable[bytes],
    crls_der: Iterable[bytes],
    ocsps_der: Iterable[bytes],
) -> Iterator[tuple[str, bytes]]:
    yield "report.json", _json(report.to_dict())
    yield "report.html", render_html(report).encode("utf-8")
    for der in _certificates(pdf_path, report, certificates_der):
        yield f"certs/{hashlib.sha256(der).hexdigest()[:16]}.pem", pem.armor("CERTIFICATE", der)
    for ext, items in (("crl", crls_der), ("ocsp", ocsps_der)):
        for index, der in enumerate(items, start=1):
            yield f"revocation/{index:02d}-{hashlib.sha256(der).hexdigest()[:16]}.{ext}", bytes(der)
    yield "history.json", _json(history)


def _certificates(pdf_path: Path, report: VerificationReport, given: Iterable[bytes]) -> list[bytes]:
    """Chain certificates of the report found in the signatures' CMS, the certificates of the
    timestamp tokens (the TSA's, which the report's proven times rest on), then the given
    ones; no duplicates."""
    wanted = {c.sha256 for s in report.signatures for c in s.chain}
    signing, stamping = _embedded_certificates(pdf_path)
    found = [der for der in signing if hashlib.sha256(der).hexdigest() in wanted]
    unique: dict[str, bytes] = {}
    for der in [*found, *stamping, *(bytes(d) for d in given)]:
        unique.setdefault(hashlib.sha256(der).hexdigest(), der)
    return list(unique.values())


def _embedded_certificates(pdf_path: Path) -> tuple[list[bytes], list[bytes]]:
    """Certificates inside every signature's /Contents, and those of the timestamp tokens in
    them, found by a bounded byte scan (no PDF parser: the file may be hostile, and it was
    already verified in a sandbox)."""
    signing: list[bytes] = []
    stamping: list[bytes] = []
    if pdf_path.stat().st_size == 0:
        return signing, stamping
    with open(pdf_path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for match in _BYTE_RANGE.finditer(data):
            a, b, c, _ = (int(x) for x in match.groups())
            start, end = a + b, c
            if not (0 < start < end <= len(data)) or end - start > _MAX_CMS_HEX or data[start : start + 1] != b"<":
                continue
            own, tokens = _certs_in_cms(bytes(data[start + 1 : end - 1]))
            signing.extend(own)
            stamping.extend(tokens)
    return signing, stamping


def _certs_in_cms(hex_contents: bytes) -> tuple[list[bytes], list[bytes]]:
    """The certificates of one signature's CMS, and those of the timestamp tokens among its
    signers' unsigned attributes (a document timestamp's own CMS is a token: the first list)."""
    try:
        text = hex_contents.decode("ascii").strip()
        # the placeholder is zero-padded: strict=False ignores the trailing bytes
        info = cms.ContentInfo.load(bytes.fromhex(text + "0" * (len(text) % 2)), strict=False)
        tokens: list[bytes] = []
        for signer in info["content"]["signer_infos"]:
            attrs = signer["unsigned_attrs"]
            for attr in [] if isinstance(attrs, core.Void) else attrs:
                if attr["type"].native == "signature_time_stamp_token":
                    tokens.extend(der for token in attr["values"] for der in _certs_of(token))
        return _certs_of(info), tokens
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):  # unreadable CMS: nothing to add
        return [], []


def _certs_of(info: cms.ContentInfo) -> list[bytes]:
    certs = info["content"]["certificates"]
    return [c.chosen.dump() for c in certs if isinstance(c.chosen, asn1_x509.Certificate)] if certs else []


def _manifest(report: VerificationReport, files: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "format": "docexchange-evidence/1",
        "created_at": datetime.now(VN_TZ).isoformat(),
        "document": report.file,
        "document_sha256": report.sha256,
        "verdict": str(report.verdict),
        "files": files,
    }


def _entry(name: str, sha256: str, size: int) -> dict[str, Any]:
    return {"path": name, "sha256": sha256, "size": size}


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=1, default=str).encode("utf-8")


def _safe(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    cleaned = _SAFE_NAME.sub("_", ascii_name).strip("._") or "document"
    return cleaned if cleaned.lower().endswith(".pdf") else f"{cleaned}.pdf"
