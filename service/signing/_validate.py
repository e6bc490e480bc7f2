"""Worker-side validation of one PDF (runs inside a verification worker process).

Every pyHanko call is wrapped: hostile files raise all sorts of exceptions
(PdfReadError, KeyError, bare ValueError/AssertionError/AttributeError...), and
each one must become INDETERMINATE/FAILED with the reason, never "passed".
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from asn1crypto import core, crl, ocsp
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY, ModificationLevel
from pyhanko.sign.validation import async_validate_pdf_signature, async_validate_pdf_timestamp
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleTrustManager

from service.signing._count import count_signatures
from service.signing._pdfinfo import HostileStructure, check_field_tree
from service.signing.pades import VN_TZ, file_sha256
from service.signing.report import (
    CertInfo,
    Finding,
    Indication,
    Modification,
    SignatureReport,
    Verdict,
    VerificationReport,
    finding,
)
from service.signing.trust import TrustConfig

__all__ = ["validate_file"]

# Broad on purpose: see module docstring (trap 3 of docs/reference).
_HOSTILE = (Exception,)
_CERT_INFO: dict[bytes, CertInfo] = {}


class _Trust:
    """Parsed trust material, kept per worker process and reused for every file:
    the roots' trust manager and the CRL/OCSP objects are shared by all
    contexts (they are read-only; asn1crypto caches what it parses in them)."""

    def __init__(self, trust: TrustConfig) -> None:
        self.config = trust
        self.roots = trust.roots()
        self.others = trust.intermediates()
        self.trust_manager = SimpleTrustManager.build(trust_roots=self.roots)
        self.crls: list[Any] = [_parsed(crl.CertificateList, der) for der in trust.crls_der]
        self.ocsps: list[Any] = [_parsed(ocsp.OCSPResponse, der) for der in trust.ocsps_der]

    def context(
        self, extra_crls: list[Any], extra_ocsps: list[Any], extra_certs: list[Any], moment: datetime | None
    ) -> ValidationContext:
        return ValidationContext(
            trust_manager=self.trust_manager,
            other_certs=self.others + extra_certs,
            crls=self.crls + extra_crls,
            ocsps=self.ocsps + extra_ocsps,
            allow_fetching=False,
            revocation_mode=self.config.revocation_mode,
            moment=moment,
            retroactive_revinfo=moment is not None,
        )


def _parsed(kind: Any, der: bytes) -> Any:
    # malformed data stays bytes, so it fails where it always did (per file, reported)
    try:
        return kind.load(der)
    except ValueError:
        return der


async def validate_file(path: Path, trust: _Trust) -> VerificationReport:
    checked = datetime.now(VN_TZ).isoformat()
    digest, counts = file_sha256(path), count_signatures(path)
    base: dict[str, Any] = {
        "file": path.name,
        "sha256": digest,
        "fields_counted": counts.byte_ranges,
        "sig_fields_counted": counts.sig_fields,
        "checked_at": checked,
    }
    findings: list[Finding] = []
    try:
        with open(path, "rb") as fh:
            reader = _open_reader(fh, findings)
            sigs = reader.embedded_signatures
            reports = await _validate_all(reader, sigs, trust)
    except _HOSTILE as exc:
        findings.append(finding("UNREADABLE", f"{type(exc).__name__}: {exc}"))
        return VerificationReport(
            **base,
            verdict=Verdict.FAILED if counts.byte_ranges else Verdict.INDETERMINATE,
            signatures=[],
            fields_enumerated=0,
            findings=findings,
        )
    return VerificationReport(
        **base,
        verdict=_verdict(reports, counts.byte_ranges, findings),
        signatures=reports,
        fields_enumerated=len(sigs),
        findings=findings,
    )


def _open_reader(fh: Any, findings: list[Finding]) -> PdfFileReader:
    try:
        reader = PdfFileReader(fh, strict=True)
        check_field_tree(reader)
        reader.embedded_signatures  # noqa: B018 - strict parsing happens lazily
        return reader
    except HostileStructure:
        raise  # no leniency reads it better: the verdict says why it is refused
    except _HOSTILE as exc:
        findings.append(finding("NON_STRICT", f"{type(exc).__name__}: {exc}"))
        fh.seek(0)
        reader = PdfFileReader(fh, strict=False)
        check_field_tree(reader)  # strict reading failed before it reached the tree
        return reader


def _verdict(reports: list[SignatureReport], raw_count: int, findings: list[Finding]) -> Verdict:
    if raw_count > len(reports):
        findings.append(finding("COUNT_MISMATCH", f"{raw_count} /ByteRange found, {len(reports)} enumerated"))
    if not reports:
        if raw_count == 0:
            findings.append(finding("NO_SIGNATURE"))
        return Verdict.INDETERMINATE
    if any(r.indication is Indication.TOTAL_FAILED for r in reports):
        return Verdict.FAILED
    if all(r.kind == "document_timestamp" for r in reports):
        findings.append(finding("NO_SIGNATURE", "only document timestamps: they prove when the file existed, "
                                                "not who signed it"))
        return Verdict.INDETERMINATE
    if raw_count != len(reports) or any(r.indication is not Indication.TOTAL_PASSED for r in reports):
        return Verdict.INDETERMINATE
    return Verdict.PASSED


async def _validate_all(
    reader: PdfFileReader, sigs: list[EmbeddedPdfSignature], trust: _Trust
) -> list[SignatureReport]:
    dss = _dss_material(reader)
    doc_ts_revisions = [s.signed_revision for s in sigs if s.sig_object_type == "/DocTimeStamp"]
    # A document timestamp proves when the file existed; one that draws on a page after a
    # signature (a page-sized white sheet with new text) changes what the reader sees, and
    # needs no key: anyone can get one from a public timestamping service.
    overlays = {str(s.field_name) for s in sigs if s.sig_object_type == "/DocTimeStamp" and _draws_on_page(s)}
    reports = []
    for index, sig in enumerate(sigs):
        later = {str(s.field_name) for s in sigs[index + 1 :]} - overlays
        try:
            reports.append(await _validate_one(sig, trust, dss, later, doc_ts_revisions, overlays))
        except _HOSTILE as exc:
            reports.append(_broken(sig, exc))
    return reports


def _dss_material(reader: PdfFileReader) -> tuple[list[Any], list[Any], list[Any]]:
    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except _HOSTILE:
        return [], [], []
    return list(dss.crls), list(dss.ocsps), list(dss.certs.values())


async def _validate_one(
    sig: EmbeddedPdfSignature,
    trust: _Trust,
    dss: tuple[list[Any], list[Any], list[Any]],
    later: set[str],
    doc_ts: list[int],
    overlays: set[str],
) -> SignatureReport:
    crls, ocsps, certs = dss
    if sig.sig_object_type == "/DocTimeStamp":
        ts_status = await async_validate_pdf_timestamp(
            sig, validation_context=trust.context(crls, ocsps, certs, None), diff_policy=DEFAULT_DIFF_POLICY
        )
        return _report(sig, ts_status, "DOC-TS", None, later, overlays)
    proven = _tst_time(sig)
    status = await async_validate_pdf_signature(
        sig,
        signer_validation_context=trust.context(crls, ocsps, certs, proven),
        ts_validation_context=trust.context(crls, ocsps, certs, None),
        diff_policy=DEFAULT_DIFF_POLICY,
    )
    tst = getattr(status, "timestamp_validity", None)
    if proven is not None and not (tst and tst.intact and tst.valid and tst.trusted):
        # the timestamp is not usable: judge the certificate at validation time instead
        status = await async_validate_pdf_signature(
            sig, signer_validation_context=trust.context(crls, ocsps, certs, None), diff_policy=DEFAULT_DIFF_POLICY
        )
    level = _level(proven, bool(crls or ocsps), any(rev > sig.signed_revision for rev in doc_ts))
    return _report(sig, status, level, proven, later, overlays)


def _draws_on_page(sig: EmbeddedPdfSignature) -> bool:
    """Whether the signature's field shows on a page: a widget with an area that is not hidden.
    A field that cannot be read counts as drawn: it is not shown to be harmless."""
    try:
        field = sig.sig_field
        widgets = [kid.get_object() for kid in field.get("/Kids", ())] or [field]
        return any(_visible(widget) for widget in widgets)
    except _HOSTILE:
        return True


def _visible(widget: Any) -> bool:
    if "/Rect" not in widget:
        return False
    x1, y1, x2, y2 = (float(v) for v in widget["/Rect"])
    hidden = int(widget.get("/F", 0)) & (_HIDDEN | _NO_VIEW)
    return abs(x2 - x1) * abs(y2 - y1) > 0 and not hidden


_HIDDEN, _NO_VIEW = 1 << 1, 1 << 5  # annotation flags (ISO 32000-1, 12.5.3)


def _tst_time(sig: EmbeddedPdfSignature) -> datetime | None:
    attrs = sig.signer_info["unsigned_attrs"]
    # not ``attrs.native``: that converts the whole timestamp token, certificates
    # included, to Python objects (~0.3 s per signature)
    if isinstance(attrs, core.Void):
        return None
    for attr in attrs:
        if attr["type"].native == "signature_time_stamp_token":
            tst_info = attr["values"][0]["content"]["encap_content_info"]["content"].parsed
            gen_time: datetime = tst_info["gen_time"].native
            return gen_time
    return None


def _level(proven: datetime | None, has_revinfo: bool, has_doc_ts: bool) -> str:
    if proven is None:
        return "B-B"
    if not has_revinfo:
        return "B-T"
    return "B-LTA" if has_doc_ts else "B-LT"


def _report(
    sig: EmbeddedPdfSignature, status: Any, level: str, proven: datetime | None, later: set[str], overlays: set[str]
) -> SignatureReport:
    modification, changed = _modification(status, later, overlays)
    indication, sub, findings = _judge(status, modification)
    drawn_over = sorted(set(changed) & overlays)
    if drawn_over:
        findings.append(finding("VISIBLE_TIMESTAMP", f"added after this signature: {', '.join(drawn_over)}"))
    cert = status.signing_cert
    return SignatureReport(
        field_name=str(sig.field_name),
        kind="document_timestamp" if level == "DOC-TS" else "signature",
        signer_cn=_cn(cert),
        signer_serial=str(cert.serial_number),
        chain=_chain(status),
        claimed_time=_iso(getattr(status, "signer_reported_dt", None) or sig.self_reported_timestamp),
        proven_time=_iso(proven or getattr(status, "timestamp", None)),
        level=level,
        indication=indication,
        sub_indication=sub,
        intact=bool(status.intact),
        crypto_valid=bool(status.valid),
        trusted=bool(status.trusted),
        coverage=_coverage(status.coverage),
        modification=modification,
        changed_fields=changed,
        findings=findings,
    )


def _modification(status: Any, later: set[str], overlays: set[str]) -> tuple[Modification, list[str]]:
    """How the file changed after this signature. ``later``: the signatures added after it,
    which may change their own fields; ``overlays``: document timestamps that draw on a page."""
    if status.coverage == SignatureCoverageLevel.ENTIRE_FILE:
        return Modification.NONE, []
    diff = status.diff_result
    changed = sorted(str(f) for f in (getattr(diff, "changed_form_fields", None) or ()))
    level = status.modification_level
    if (
        status.coverage != SignatureCoverageLevel.ENTIRE_REVISION
        or level in (None, ModificationLevel.OTHER)
        or not status.docmdp_ok
    ):
        return Modification.TAMPERED, changed
    if level == ModificationLevel.LTA_UPDATES:
        return Modification.PERMITTED, changed
    if level == ModificationLevel.FORM_FILLING and set(changed) <= later:
        return Modification.PERMITTED, changed
    if level == ModificationLevel.FORM_FILLING and set(changed) <= later | overlays:
        return Modification.TAMPERED, changed
    return Modification.REJECTED_BY_POLICY, changed


def _judge(status: Any, modification: Modification) -> tuple[Indication, str | None, list[Finding]]:
    tst = getattr(status, "timestamp_validity", None)
    checks: list[tuple[bool, Indication, str]] = [
        (not status.intact, Indication.TOTAL_FAILED, "HASH_FAILURE"),
        (not status.valid, Indication.TOTAL_FAILED, "SIG_CRYPTO_FAILURE"),
        (getattr(status, "revoked", False), Indication.TOTAL_FAILED, "REVOKED"),
        (modification is Modification.TAMPERED, Indication.TOTAL_FAILED, "FORMAT_FAILURE"),
        (tst is not None and not (tst.intact and tst.valid), Indication.TOTAL_FAILED, "TIMESTAMP_INVALID"),
        (not status.trusted, Indication.INDETERMINATE, _trust_sub(status)),
        (modification is Modification.REJECTED_BY_POLICY, Indication.INDETERMINATE, "SIG_CONSTRAINTS_FAILURE"),
    ]
    failed = [(ind, code) for cond, ind, code in checks if cond]
    findings = [finding(code) for _, code in failed]
    findings += _modification_findings(modification)
    if not failed:
        return Indication.TOTAL_PASSED, None, [finding("OK"), *findings]
    indication, code = failed[0]
    sub = "SIG_CRYPTO_FAILURE" if code == "TIMESTAMP_INVALID" else code
    return indication, sub, findings


def _modification_findings(modification: Modification) -> list[Finding]:
    codes = {
        Modification.TAMPERED: "MODIFIED_TAMPERED",
        Modification.REJECTED_BY_POLICY: "MODIFIED_POLICY",
        Modification.PERMITTED: "MODIFIED_PERMITTED",
    }
    return [finding(codes[modification])] if modification in codes else []


def _trust_sub(status: Any) -> str:
    indic = getattr(status, "trust_problem_indic", None)
    return indic.name if indic is not None else "NO_CERTIFICATE_CHAIN_FOUND"


def _broken(sig: EmbeddedPdfSignature, exc: BaseException) -> SignatureReport:
    name = getattr(sig, "field_name", "?")
    detail = f"{type(exc).__name__}: {exc}"
    return SignatureReport(
        field_name=str(name),
        kind="signature",
        signer_cn="",
        signer_serial="",
        chain=[],
        claimed_time=None,
        proven_time=None,
        level="?",
        indication=Indication.INDETERMINATE,
        sub_indication="FORMAT_FAILURE",
        intact=False,
        crypto_valid=False,
        trusted=False,
        coverage="unknown",
        modification=Modification.TAMPERED,
        changed_fields=[],
        findings=[finding("UNREADABLE", detail)],
    )


def _chain(status: Any) -> list[CertInfo]:
    path = status.validation_path
    certs = list(path.iter_certs(include_root=True)) if path is not None else [status.signing_cert]
    return [_cert_info(c) for c in reversed(certs)] if path is not None else [_cert_info(certs[0])]


def _cert_info(cert: asn1_x509.Certificate) -> CertInfo:
    # the same few certificates recur in every file of a batch; CertInfo is a
    # pure function of the encoding
    der = cert.dump()
    info = _CERT_INFO.get(der)
    if info is None:
        if len(_CERT_INFO) >= 1024:
            _CERT_INFO.clear()
        info = _CERT_INFO[der] = _new_cert_info(cert)
    return info


def _new_cert_info(cert: asn1_x509.Certificate) -> CertInfo:
    return CertInfo(
        subject=cert.subject.human_friendly,
        issuer=cert.issuer.human_friendly,
        serial=str(cert.serial_number),
        not_before=_iso(cert.not_valid_before) or "",
        not_after=_iso(cert.not_valid_after) or "",
        sha256=cert.sha256.hex(),
    )


def _cn(cert: asn1_x509.Certificate) -> str:
    return str(cert.subject.native.get("common_name", cert.subject.human_friendly))


def _coverage(cov: Any) -> str:
    names = {
        SignatureCoverageLevel.ENTIRE_FILE: "entire_file",
        SignatureCoverageLevel.ENTIRE_REVISION: "entire_revision",
    }
    return names.get(cov, "partial" if cov is not None else "unknown")


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(VN_TZ).isoformat() if value is not None else None
