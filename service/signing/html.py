"""A verification report as one self-contained, printable HTML page (for auditors).

Everything that comes from the report is escaped: names, fields and details
are read from hostile files. The page loads nothing (no scripts, fonts or
images) and says so in its Content-Security-Policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from html import escape

from service.signing.pades import VN_TZ
from service.signing.report import Finding, Indication, Modification, SignatureReport, Verdict, VerificationReport

__all__ = ["render_html"]

# value -> (Vietnamese, English)
_VERDICT = {
    Verdict.PASSED: ("HỢP LỆ", "PASSED — every signature is valid and the document is unchanged"),
    Verdict.FAILED: ("KHÔNG HỢP LỆ", "FAILED — at least one signature is invalid or the document was altered"),
    Verdict.INDETERMINATE: ("CHƯA XÁC ĐỊNH", "INDETERMINATE — validity could not be established"),
}
_INDICATION = {
    Indication.TOTAL_PASSED: ("Hợp lệ", "Passed"),
    Indication.TOTAL_FAILED: ("Không hợp lệ", "Failed"),
    Indication.INDETERMINATE: ("Chưa xác định", "Indeterminate"),
}
_MODIFICATION = {
    Modification.NONE: ("Không có thay đổi sau khi ký", "No change after signing"),
    Modification.PERMITTED: (
        "Chỉ có chữ ký tiếp theo / dữ liệu kiểm tra dài hạn",
        "Only later signatures / long-term validation data",
    ),
    Modification.REJECTED_BY_POLICY: ("Có thay đổi, chính sách không chấp nhận", "Changed; rejected by policy"),
    Modification.TAMPERED: ("Bị sửa đổi trái phép", "Tampered"),
}
_COVERAGE = {
    "entire_file": ("Toàn bộ tệp", "The entire file"),
    "entire_revision": (
        "Toàn bộ phiên bản đã ký (có cập nhật sau)",
        "The entire signed revision (later updates follow)",
    ),
    "partial": ("Một phần", "Partial"),
    "unknown": ("Không xác định", "Unknown"),
}
_CSS = """
body{font-family:"Times New Roman",Tinos,"Liberation Serif",serif;margin:2em;color:#111;max-width:60em}
h1{font-size:1.4em;margin:0 0 .3em} h2{font-size:1.15em;margin:1.6em 0 .4em;border-bottom:1px solid #999}
.verdict{padding:.6em 1em;border:3px solid;font-size:1.2em;margin:1em 0}
.passed{border-color:#1a7f37;background:#e9f7ee} .failed{border-color:#b42318;background:#fdecea}
.indeterminate{border-color:#b54708;background:#fff4e5}
table{border-collapse:collapse;width:100%;margin:.4em 0}
th,td{border:1px solid #bbb;padding:.3em .5em;text-align:left;vertical-align:top}
th{width:26%;background:#f3f3f3;font-weight:normal} .en{color:#555;font-style:italic}
.mono{font-family:monospace;word-break:break-all} ul{margin:.2em 0;padding-left:1.3em}
@media print{body{margin:0} .verdict{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""


def render_html(report: VerificationReport) -> str:
    """The whole page as a string (UTF-8 when written)."""
    vi, en = _VERDICT.get(report.verdict, (str(report.verdict), str(report.verdict)))
    parts = [
        '<!DOCTYPE html>\n<html lang="vi"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>Kết quả kiểm tra chữ ký số — {_e(report.file)}</title><style>{_CSS}</style></head><body>",
        '<h1>Kết quả kiểm tra chữ ký số <span class="en">/ Signature verification report</span></h1>',
        f'<div class="verdict {_e(_css_class(report.verdict))}">',
        f'<strong>{_e(vi)}</strong><br><span class="en">{_e(en)}</span></div>',
        _table(_document_rows(report)),
    ]
    if report.findings:
        parts.append(
            f'<h2>Ghi nhận về tài liệu <span class="en">/ Document findings</span></h2>{_findings(report.findings)}'
        )
    for index, sig in enumerate(report.signatures, start=1):
        parts.append(f'<h2>Chữ ký {index}: {_e(sig.field_name)} <span class="en">/ Signature {index}</span></h2>')
        parts.append(_table(_signature_rows(sig)))
    parts.append("</body></html>\n")
    return "".join(parts)


def _document_rows(report: VerificationReport) -> list[tuple[str, str, str]]:
    return [
        ("Tệp", "File", _e(report.file)),
        ("SHA-256", "SHA-256", f'<span class="mono">{_e(report.sha256)}</span>'),
        (
            "Số chữ ký",
            "Signatures",
            _e(f"{report.fields_enumerated} (đếm độc lập / counted independently: {report.fields_counted})"),
        ),
        ("Thời điểm kiểm tra", "Checked at", _e(_vn_time(report.checked_at))),
    ]


def _signature_rows(sig: SignatureReport) -> list[tuple[str, str, str]]:
    ind_vi, ind_en = _INDICATION.get(sig.indication, (str(sig.indication), str(sig.indication)))
    mod_vi, mod_en = _MODIFICATION.get(sig.modification, (str(sig.modification), str(sig.modification)))
    cov_vi, cov_en = _COVERAGE.get(sig.coverage, (sig.coverage, sig.coverage))
    sub = f" / {_e(sig.sub_indication)}" if sig.sub_indication else ""
    return [
        ("Trường chữ ký", "Field", _e(f"{sig.field_name} ({sig.kind})")),
        ("Người ký", "Signer", _e(f"{sig.signer_cn} — serial {sig.signer_serial}")),
        ("Chuỗi chứng thư", "Certificate chain", _chain(sig)),
        ("Thời điểm ký (khai báo)", "Claimed signing time", _e(_vn_time(sig.claimed_time))),
        ("Thời điểm ký (dấu thời gian)", "Proven time (timestamp)", _e(_vn_time(sig.proven_time))),
        ("Mức PAdES", "PAdES level", _e(sig.level)),
        (
            "Kết luận",
            "Indication",
            f'<strong>{_e(ind_vi)}</strong> <span class="en">{_e(ind_en)}</span><br>{_e(sig.indication)}{sub}',
        ),
        ("Kiểm tra", "Checks", _checks(sig)),
        ("Phạm vi ký", "Coverage", f'{_e(cov_vi)} <span class="en">/ {_e(cov_en)}</span>'),
        (
            "Thay đổi sau khi ký",
            "Modifications",
            f'{_e(mod_vi)} <span class="en">/ {_e(mod_en)}</span>{_changed(sig.changed_fields)}',
        ),
        ("Giải thích", "Explanation", _findings(sig.findings)),
    ]


def _table(rows: Iterable[tuple[str, str, str]]) -> str:
    body = "".join(
        f'<tr><th>{_e(vi)}<br><span class="en">{_e(en)}</span></th><td>{value}</td></tr>' for vi, en, value in rows
    )
    return f"<table>{body}</table>"


def _chain(sig: SignatureReport) -> str:
    if not sig.chain:
        return "<em>—</em>"
    items = "".join(
        f'<li>{_e(c.subject)}<br><span class="en">issuer: {_e(c.issuer)}; serial {_e(c.serial)}; '
        f"{_e(_vn_time(c.not_before))} → {_e(_vn_time(c.not_after))}</span></li>"
        for c in sig.chain
    )
    return f"<ol>{items}</ol>"


def _checks(sig: SignatureReport) -> str:
    marks = [
        ("Dữ liệu nguyên vẹn", "Signed bytes intact", sig.intact),
        ("Chữ ký đúng về mật mã", "Cryptographically valid", sig.crypto_valid),
        ("Chứng thư tin cậy", "Certificate trusted", sig.trusted),
    ]
    return (
        "<ul>"
        + "".join(f'<li>{"✔" if ok else "✘"} {_e(vi)} <span class="en">/ {_e(en)}</span></li>' for vi, en, ok in marks)
        + "</ul>"
    )


def _changed(names: list[str]) -> str:
    if not names:
        return ""
    return '<br>Trường bị thay đổi <span class="en">/ changed fields</span>: ' + ", ".join(_e(n) for n in names)


def _findings(findings: list[Finding]) -> str:
    if not findings:
        return "<em>—</em>"
    items = "".join(
        f'<li><strong>{_e(f.code)}</strong>: {_e(f.vi)}<br><span class="en">{_e(f.en)}</span>'
        + (f'<br><span class="mono">{_e(f.detail)}</span>' if f.detail else "")
        + "</li>"
        for f in findings
    )
    return f"<ul>{items}</ul>"


def _vn_time(value: str | None) -> str:
    """ISO 8601 (UTC) → 'dd/mm/yyyy hh:mm:ss (giờ Việt Nam, UTC+07:00)'; unparsable values shown as given."""
    if not value:
        return "—"
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return str(value)
    if moment.tzinfo is None:
        return f"{moment:%d/%m/%Y %H:%M:%S} (?)"
    return f"{moment.astimezone(VN_TZ):%d/%m/%Y %H:%M:%S} (giờ Việt Nam, UTC+07:00)"


def _css_class(verdict: Verdict) -> str:
    return verdict.value if isinstance(verdict, Verdict) else "indeterminate"


def _e(value: object) -> str:
    return escape(str(value), quote=True)
