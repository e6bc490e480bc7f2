"""What clients send and receive about documents and deliveries."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

from service.errors import InvalidInputError
from service.routing import MAX_RECIPIENTS, InvalidRecipientError, RecipientSelector, parse_recipients
from service.text import VN_TZ, IsoDate, PlainText, RequiredText, fold, nfc

__all__ = [
    "URGENCY_NAMES",
    "ClassifiedDocumentError",
    "DocumentMetadata",
    "SendRequest",
    "StatusChange",
    "parse_urgency",
]

URGENCY_NAMES = ("Thường", "Khẩn", "Thượng khẩn", "Hỏa tốc")
_URGENCY_BY_FOLD = {fold(n): i for i, n in enumerate(URGENCY_NAMES)} | {"hoa toc hen gio": 3, "normal": 0}
_SECRET = {"mat", "toi mat", "tuyet mat", "secret", "top secret", "confidential"}
_NOT_SECRET = {"", "none", "khong", "thuong", "khong mat", "normal"}
# A date of issue is the Party's (founded 3 February 1930) and at most a year ahead (a plan
# dated for the new year); anything else is a typing slip (2062 for 2026) that would sort the
# document first, or last, in every listing for good.
_EARLIEST_ISSUE = date(1930, 2, 3)
_ISSUE_AHEAD_DAYS = 366
_DEADLINE_DAYS = 3653


class ClassifiedDocumentError(InvalidInputError):
    """Mật / Tối mật / Tuyệt mật documents are outside electronic exchange."""

    code = "classified-document"
    title = "Classified documents are not accepted"


def parse_urgency(value: Any) -> int:
    """0 Thường, 1 Khẩn, 2 Thượng khẩn, 3 Hỏa tốc; names in any spelling or 0–3."""
    if isinstance(value, int) and 0 <= value <= 3:
        return value
    key = fold(str(value or ""))
    if key.isdigit() and int(key) <= 3:
        return int(key)
    if key in _URGENCY_BY_FOLD:
        return _URGENCY_BY_FOLD[key]
    raise ValueError(f"urgency must be one of {', '.join(URGENCY_NAMES)}")


class DocumentMetadata(BaseModel):
    """Metadata of an uploaded document (the ``metadata`` JSON part)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {
            "number_notation": "35-KH/ĐU", "doc_type": "Kế hoạch", "issued_on": "2026-11-20",
            "place": "Tân Lập", "subject": "Kế hoạch tổ chức hội nghị sơ kết",
            "signer_name": "Nguyễn Văn An", "signer_position": "Bí thư", "urgency": "Khẩn",
            "secrecy": "", "deadline": "2026-11-30", "recipients_text": "Như trên; Lưu VP.",
        }},
    )

    number_notation: PlainText = Field(min_length=3, max_length=150,
                                       description="Số và ký hiệu, e.g. 35-KH/HU or 15/QĐ-BNV")
    doc_type: RequiredText = Field(json_schema_extra={"minLength": 1}, max_length=100,
                                   description="Loại văn bản, e.g. Kế hoạch")
    issued_on: IsoDate = Field(description="Ngày ban hành, YYYY-MM-DD")
    place: PlainText = Field(default="", max_length=200)
    subject: RequiredText = Field(json_schema_extra={"minLength": 1}, max_length=2000, description="Trích yếu")
    signer_name: PlainText = Field(default="", max_length=300)
    signer_position: PlainText = Field(default="", max_length=300)
    urgency: int = Field(default=0, description="Thường, Khẩn, Thượng khẩn, Hỏa tốc (or 0–3)")
    secrecy: PlainText = Field(default="", max_length=50, description="Must be empty: classified documents are refused")
    deadline: IsoDate | None = Field(default=None, description="Hạn xử lý, YYYY-MM-DD")
    recipients_text: PlainText = Field(default="", max_length=4000, description="Nơi nhận, as printed")

    @field_validator("number_notation", "doc_type", "place", "subject", "signer_name",
                     "signer_position", "recipients_text", mode="after")
    @classmethod
    def _nfc(cls, value: str) -> str:
        return nfc(value)

    @field_validator("urgency", mode="before")
    @classmethod
    def _urgency(cls, value: Any) -> int:
        return parse_urgency(value)

    @field_validator("issued_on")
    @classmethod
    def _plausible_issue(cls, value: date) -> date:
        latest = datetime.now(VN_TZ).date() + timedelta(days=_ISSUE_AHEAD_DAYS)
        if value < _EARLIEST_ISSUE or value > latest:
            raise ValueError(f"{value.isoformat()} cannot be the date of issue: give a date from "
                             f"{_EARLIEST_ISSUE.isoformat()} to {latest.isoformat()}")
        return value

    @field_validator("deadline")
    @classmethod
    def _after_issue(cls, value: date | None, info: ValidationInfo) -> date | None:
        issued = info.data.get("issued_on")
        if value is not None and isinstance(issued, date) and value < issued:
            raise ValueError(f"the handling deadline {value.isoformat()} is before the date of issue "
                             f"{issued.isoformat()}: check both dates")
        if value is not None and isinstance(issued, date) and value > issued + timedelta(days=_DEADLINE_DAYS):
            raise ValueError(f"the handling deadline {value.isoformat()} is more than ten years after the date of "
                             f"issue {issued.isoformat()}: check the year")
        return value

    def check_secrecy(self) -> None:
        """Raises ClassifiedDocumentError for Mật/Tối mật/Tuyệt mật, InvalidInputError for unknown marks."""
        mark = fold(self.secrecy)
        if mark in _SECRET:
            raise ClassifiedDocumentError(
                f"this document is marked '{nfc(self.secrecy)}': classified documents (Mật, Tối mật, "
                "Tuyệt mật) may not be sent electronically; nothing was stored",
                field="secrecy",
            )
        if mark not in _NOT_SECRET:
            raise InvalidInputError(f"unknown secrecy mark {self.secrecy!r}; leave it empty", field="secrecy")


class SendRequest(BaseModel):
    """Recipients: unit codes/ids, or selectors ``{"under": code, "level": name}``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "recipients": ["000.00.01.H49", {"under": "000.00.01.H49", "level": "Chi bộ"}],
    }})

    recipients: Annotated[list[Any], WithJsonSchema({
        "type": "array", "minItems": 1, "maxItems": MAX_RECIPIENTS,
        "items": {"anyOf": [{"type": "string"}, {"type": "object"}]}})] = Field(
        description='Each a unit code or id, {"unit": code}, or {"under": code, "level": name, '
                    '"include_root": false} for the units below one (of one level)')

    @field_validator("recipients", mode="before")
    @classmethod
    def _recipients(cls, value: Any) -> list[RecipientSelector]:
        # Parsed here, once, by the parser the send uses: a bad entry is named by its position
        # in words a clerk can act on, and nothing is sent.
        if not isinstance(value, list):
            raise PydanticCustomError("invalid_recipient", "must be a list of recipients")
        try:
            return parse_recipients(value)
        except InvalidRecipientError as exc:
            raise PydanticCustomError("invalid_recipient", "{detail}", {"detail": exc.detail}) from exc

    @property
    def selectors(self) -> list[RecipientSelector]:
        return list(self.recipients)


class StatusChange(BaseModel):
    """A receiver's handling step: 02 with a reason, 03 with an incoming number, …"""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "status": "03", "incoming_number": "125", "note": "Vào sổ văn bản đến",
    }})

    status: str = Field(pattern=r"^(02|03|04|05|06|15|16)$")
    note: PlainText = Field(default="", max_length=2000)
    incoming_number: PlainText | None = Field(default=None, max_length=50)
    assignee: PlainText | None = Field(default=None, max_length=300)
