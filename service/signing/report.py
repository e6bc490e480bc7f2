"""Verification report, modelled on the ETSI EN 319 102-1 validation model (EU DSS).

Indications per signature: TOTAL_PASSED / TOTAL_FAILED / INDETERMINATE with an
ETSI sub-indication. The document verdict is ``passed`` only when every
signature passed, nothing was changed after signing beyond what later
signatures / LTV updates explain, and our own count of signature fields
matches what pyHanko enumerated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "CertInfo",
    "Finding",
    "Indication",
    "Modification",
    "RULES_VERSION",
    "SignatureReport",
    "Verdict",
    "VerificationReport",
    "finding",
]


class Indication(StrEnum):
    TOTAL_PASSED = "TOTAL_PASSED"
    TOTAL_FAILED = "TOTAL_FAILED"
    INDETERMINATE = "INDETERMINATE"


class Verdict(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    INDETERMINATE = "indeterminate"


class Modification(StrEnum):
    NONE = "none"  # the signature covers the whole file
    PERMITTED = "permitted"  # later signatures / LTV data only
    REJECTED_BY_POLICY = "rejected_by_policy"  # pyHanko accepts it, our policy does not
    TAMPERED = "tampered"  # not allowed by the document's own locks, or unexplainable


# code -> (English, Vietnamese); every finding in a report comes from here.
MESSAGES: dict[str, tuple[str, str]] = {
    "OK": (
        "The signature is valid and the signed content is unchanged.",
        "Chữ ký hợp lệ, nội dung đã ký không bị thay đổi.",
    ),
    "HASH_FAILURE": (
        "The signed bytes were changed after signing (digest mismatch).",
        "Dữ liệu đã ký bị thay đổi sau khi ký (sai giá trị băm).",
    ),
    "SIG_CRYPTO_FAILURE": (
        "The cryptographic signature value does not verify.",
        "Giá trị chữ ký số không kiểm tra được về mặt mật mã.",
    ),
    "REVOKED": (
        "The signer's certificate was revoked before the signing time.",
        "Chứng thư số của người ký đã bị thu hồi trước thời điểm ký.",
    ),
    "NO_CERTIFICATE_CHAIN_FOUND": (
        "No chain to a trusted root certificate was found.",
        "Không tìm thấy chuỗi chứng thư tới chứng thư gốc tin cậy.",
    ),
    "CHAIN_CONSTRAINTS_FAILURE": (
        "The certificate chain does not satisfy the validation constraints.",
        "Chuỗi chứng thư không thỏa mãn các ràng buộc kiểm tra.",
    ),
    "OUT_OF_BOUNDS_NO_POE": (
        "The certificate was expired or not yet valid at the signing time.",
        "Chứng thư số đã hết hạn hoặc chưa có hiệu lực tại thời điểm ký.",
    ),
    "TRY_LATER": (
        "Revocation status could not be determined with the data held.",
        "Không xác định được tình trạng thu hồi với dữ liệu hiện có.",
    ),
    "FORMAT_FAILURE": (
        "The signature or document structure is malformed or not allowed.",
        "Cấu trúc chữ ký hoặc tài liệu bị lỗi hoặc không được phép.",
    ),
    "MODIFIED_TAMPERED": (
        "The document was changed after signing in a way the signature's locks forbid.",
        "Tài liệu bị sửa sau khi ký, trái với khóa của chữ ký.",
    ),
    "MODIFIED_POLICY": (
        "The document was changed after signing (form fields / annotations); our policy rejects this.",
        "Tài liệu bị sửa sau khi ký (trường biểu mẫu/chú thích); chính sách của hệ thống không chấp nhận.",
    ),
    "VISIBLE_TIMESTAMP": (
        "A document timestamp added after this signature draws on the page: it can cover what was signed, "
        "and proves only when the file existed, not who changed it.",
        "Dấu thời gian được thêm sau chữ ký này hiển thị trên trang: nó có thể che nội dung đã ký, và chỉ "
        "chứng minh thời điểm tồn tại của tệp, không cho biết ai đã sửa.",
    ),
    "MODIFIED_PERMITTED": (
        "Later changes are only further signatures or long-term validation data.",
        "Các thay đổi sau chỉ là chữ ký tiếp theo hoặc dữ liệu kiểm tra dài hạn.",
    ),
    "TIMESTAMP_INVALID": (
        "The signature timestamp does not verify or is not trusted.",
        "Dấu thời gian của chữ ký không hợp lệ hoặc không tin cậy.",
    ),
    "NO_SIGNATURE": (
        "The document contains no signature.",
        "Tài liệu không có chữ ký số.",
    ),
    "COUNT_MISMATCH": (
        "The file contains signature data the library did not enumerate.",
        "Tệp chứa dữ liệu chữ ký mà thư viện không liệt kê được.",
    ),
    "UNREADABLE": (
        "The file or a signature could not be read.",
        "Không đọc được tệp hoặc chữ ký.",
    ),
    "NON_STRICT": (
        "The file only opens in lenient (non-strict) parsing mode.",
        "Tệp chỉ mở được ở chế độ phân tích không nghiêm ngặt.",
    ),
    "TIMEOUT": (
        "Verification exceeded its time or memory limit.",
        "Việc kiểm tra vượt quá giới hạn thời gian hoặc bộ nhớ.",
    ),
    "GENERIC": (
        "Verification could not be completed.",
        "Không hoàn tất được việc kiểm tra.",
    ),
}


@dataclass(frozen=True)
class Finding:
    code: str
    en: str
    vi: str
    detail: str = ""


def finding(code: str, detail: str = "") -> Finding:
    en, vi = MESSAGES.get(code, MESSAGES["GENERIC"])
    return Finding(code, en, vi, detail[:500])


@dataclass(frozen=True)
class CertInfo:
    subject: str
    issuer: str
    serial: str
    not_before: str
    not_after: str
    sha256: str


@dataclass(frozen=True)
class SignatureReport:
    field_name: str
    kind: str  # "signature" | "document_timestamp"
    signer_cn: str
    signer_serial: str
    chain: list[CertInfo]
    claimed_time: str | None  # ISO 8601 UTC, from the signer
    proven_time: str | None  # ISO 8601 UTC, from a timestamp
    level: str  # B-B / B-T / B-LT / B-LTA (or DOC-TS)
    indication: Indication
    sub_indication: str | None
    intact: bool
    crypto_valid: bool
    trusted: bool
    coverage: str  # entire_file / entire_revision / partial / unknown
    modification: Modification
    changed_fields: list[str]
    findings: list[Finding]


# The verdict rules in force. Raise it with any change that can give the same bytes another
# verdict: a report stored under older rules is made again the next time it is read or the
# document is sent, and the new one is audited beside the old.
#   1  the first rules
#   2  a file whose only signature is a document timestamp is no signed document (NO_SIGNATURE)
#   3  a document timestamp that draws on a page after a signature is tampering (VISIBLE_TIMESTAMP);
#      times are shown in Vietnam time (+07:00)
RULES_VERSION = 3


@dataclass(frozen=True)
class VerificationReport:
    file: str
    sha256: str
    verdict: Verdict
    signatures: list[SignatureReport]
    fields_counted: int  # our own scan: distinct /ByteRange values
    sig_fields_counted: int  # our own scan: distinct objects with /FT /Sig
    fields_enumerated: int  # what pyHanko enumerated
    findings: list[Finding] = field(default_factory=list)
    checked_at: str = ""
    rules_version: int = RULES_VERSION  # the verdict rules that made the report

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VerificationReport:
        sigs = [
            SignatureReport(
                **{
                    **s,
                    "chain": [CertInfo(**c) for c in s["chain"]],
                    "findings": [Finding(**f) for f in s["findings"]],
                    "indication": Indication(s["indication"]),
                    "modification": Modification(s["modification"]),
                }
            )
            for s in data["signatures"]
        ]
        return cls(
            **{
                "rules_version": 0,  # stored before the rules were numbered
                **data,
                "signatures": sigs,
                "verdict": Verdict(data["verdict"]),
                "findings": [Finding(**f) for f in data["findings"]],
            }
        )
